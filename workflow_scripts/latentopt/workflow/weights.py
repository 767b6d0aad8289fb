"""The weight registry: which pretrained files a config needs, where they live, and fetching them.

Pure Python (no torch import): the Snakefile calls :func:`ensure_weights` at parse time to stop
before any job runs when a file that a job will need is absent and cannot be downloaded. Files of
an autoencoder spec: :func:`required_weight_files` (and :func:`fetch_weights`); of the metric
networks (LPIPS trunks, FID Inception): :func:`metric_weight_files`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from latentopt.workflow.config import model_spec
from latentopt.workflow.loss_specs import lpips_nets
from latentopt.workflow.model_specs import TAESD_REPO, family_of, normalize_spec, taesd_url
from latentopt.workflow.plan import selected_losses

# torchvision / pytorch-fid checkpoints, looked up in torch.hub's cache directory.
TORCH_HUB_FILES = {
    "lpips_alex": (
        "alexnet-owt-7be5be79.pth",
        "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
    ),
    "lpips_vgg": (
        "vgg16-397923af.pth",
        "https://download.pytorch.org/models/vgg16-397923af.pth",
    ),
    "fid_inception": (
        "pt_inception-2015-12-05-6726825d.pth",
        "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
        "pt_inception-2015-12-05-6726825d.pth",
    ),
}


DIFFUSERS_KINDS = ("diffusers_kl", "diffusers_tiny", "diffusers")
OFFLINE_ROUTES = (
    "To run without these downloads: point the model's `source:` at a local folder holding them (for a "
    "diffusers class, the config.json and weights that save_pretrained writes; for TAEF2, the two .pth files), "
    "or use the demo's synthetic switches (`synthetic: true` beside a preset, `kind: synthetic_kl`, "
    "metric_networks.lpips_random_trunk / inception_synthetic, with allow_synthetic: true), labelled synthetic "
    "in every output. docs/autoencoders.md"
)


class MissingWeightsError(FileNotFoundError):
    """A pretrained weight file is not on disk and may not (or could not) be downloaded."""


@dataclass(frozen=True)
class WeightFile:
    """One file a job needs: where it must be, what it is, and how to obtain it."""

    path: Path
    description: str
    url: str | None = None

    def exists(self) -> bool:
        return self.path.is_file()

    def explain(self) -> str:
        how = f"download it from {self.url}" if self.url else "obtain it"
        return f"{self.description}: expected at {self.path} ({how} and put it there)"


def offline() -> bool:
    """True when the user said there is no network (HF_HUB_OFFLINE, TRANSFORMERS_OFFLINE or
    LATENTOPT_OFFLINE set to 1/true/yes/on): nothing is downloaded then."""
    return any(
        os.environ.get(v, "").strip().lower() in {"1", "true", "yes", "on"}
        for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "LATENTOPT_OFFLINE")
    )


def download_url(url: str, path: Path, timeout_s: float = 60) -> None:
    """Download ``url`` to ``path`` (via a .part file renamed on success). Raises OSError
    (urllib's URLError included) on any failure, leaving no partial file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response, open(tmp, "wb") as out:
            while block := response.read(1 << 20):
                out.write(block)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def torch_hub_dir() -> Path:
    """torch.hub.get_dir() without importing torch: $TORCH_HOME/hub, default ~/.cache/torch/hub."""
    torch_home = os.environ.get("TORCH_HOME")
    if not torch_home:
        xdg = os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache"))
        torch_home = str(Path(xdg) / "torch")
    return Path(torch_home).expanduser() / "hub"


def torch_hub_checkpoint(key: str) -> WeightFile:
    """The cached checkpoint for one of TORCH_HUB_FILES' keys."""
    filename, url = TORCH_HUB_FILES[key]
    return WeightFile(torch_hub_dir() / "checkpoints" / filename, key, url)


def require(files: list[WeightFile]) -> None:
    """Raise MissingWeightsError naming every missing file and where to put it."""
    missing = [f for f in files if not f.exists()]
    if missing:
        lines = "\n  ".join(f.explain() for f in missing)
        raise MissingWeightsError(
            f"{len(missing)} weight file(s) missing (no download possible offline):\n  {lines}\n{OFFLINE_ROUTES}"
        )


# --- Hugging Face hub cache and diffusers model folders (still torch-free) -----------------------

HF_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
DIFFUSERS_CONFIG_NAME = "config.json"
# diffusers' own preference order when both are present.
DIFFUSERS_WEIGHTS_NAMES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")


def hf_hub_cache_dir() -> Path:
    """huggingface_hub's cache folder without importing it, read from the environment at call time.

    Same precedence as ``huggingface_hub.constants``: $HF_HUB_CACHE, else (legacy)
    $HUGGINGFACE_HUB_CACHE, else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub, default
    ~/.cache/huggingface/hub.
    """
    explicit = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return Path(os.path.expandvars(explicit)).expanduser()
    hf_home = os.environ.get("HF_HOME")
    if not hf_home:
        xdg = os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache"))
        hf_home = str(Path(xdg) / "huggingface")
    return Path(os.path.expandvars(hf_home)).expanduser() / "hub"


def hf_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def is_hf_repo_id(source: str) -> bool:
    """True when ``source`` names a hub repository rather than a local folder.

    Mirrors diffusers: an existing directory is local; so is anything that looks like a path
    (absolute, ``.``/``~`` prefixed, or with more than one ``/``). Otherwise ``org/name``.
    """
    s = str(source)
    if Path(s).expanduser().is_dir():
        return False
    if s.startswith(("/", ".", "~")) or s.count("/") > 1 or "\\" in s:
        return False
    return re.fullmatch(r"[\w.\-]+(/[\w.\-]+)?", s) is not None


def hf_repo_cache_dir(repo_id: str, repo_type: str = "model") -> Path:
    """``<hub cache>/models--org--name`` (the layout huggingface_hub writes)."""
    return hf_hub_cache_dir() / f"{repo_type}s--{repo_id.replace('/', '--')}"


def hf_hub_url(repo_id: str, filename: str, revision: str | None = None) -> str:
    return f"{hf_endpoint()}/{repo_id}/resolve/{revision or 'main'}/{filename}"


def hf_snapshot_dir(repo_id: str, revision: str | None = None) -> tuple[Path, WeightFile | None]:
    """Where a revision's files sit in the cache, and the ref file still needed to find them.

    A commit hash is its own folder name. A branch or tag (default ``main``) is resolved through
    ``refs/<revision>``, as huggingface_hub does offline; when that file is absent the folder is
    reported as ``snapshots/<revision>`` and the ref file is returned as a further requirement (a
    text file holding the snapshot folder's name; any download writes it).
    """
    rev = revision or "main"
    repo_dir = hf_repo_cache_dir(repo_id)
    if HF_COMMIT_RE.match(rev):
        return repo_dir / "snapshots" / rev, None
    ref = repo_dir / "refs" / rev
    if ref.is_file():
        commit = ref.read_text().strip()
        if commit:
            return repo_dir / "snapshots" / commit, None
    need = WeightFile(
        ref,
        f"Hugging Face cache ref '{rev}' of {repo_id} (a text file holding the snapshot folder "
        f"name, e.g. '{rev}' if you place the files by hand under snapshots/{rev}/)",
        f"{hf_endpoint()}/{repo_id}/tree/{rev}",
    )
    return repo_dir / "snapshots" / rev, need


def _diffusers_weight_files(folder: Path, describe: str, url_for) -> list[WeightFile]:
    """The weights of one diffusers model folder: the first of DIFFUSERS_WEIGHTS_NAMES present,
    or a sharded checkpoint's index and shards; the .safetensors name when nothing is there."""
    for name in DIFFUSERS_WEIGHTS_NAMES:
        if (folder / name).is_file():
            return [WeightFile(folder / name, f"{describe} weights", url_for(name))]
    for name in DIFFUSERS_WEIGHTS_NAMES:
        index = folder / f"{name}.index.json"
        if index.is_file():
            try:
                shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            except (ValueError, KeyError, TypeError):
                shards = []
            files = [WeightFile(index, f"{describe} shard index", url_for(index.name))]
            files += [WeightFile(folder / s, f"{describe} weights shard", url_for(s)) for s in shards]
            return files
    name = DIFFUSERS_WEIGHTS_NAMES[0]
    return [
        WeightFile(
            folder / name,
            f"{describe} weights ({name}, or {DIFFUSERS_WEIGHTS_NAMES[1]})",
            url_for(name),
        )
    ]


def diffusers_model_files(
    source: str, subfolder: str | None = None, revision: str | None = None, what: str = "model"
) -> list[WeightFile]:
    """Files ``ModelClass.from_pretrained(source, subfolder=..., revision=...)`` reads: config.json
    and the weights, from a local folder or from the hub cache (see hf_snapshot_dir)."""
    sub = (subfolder or "").strip("/")
    if not is_hf_repo_id(source):
        folder = Path(source).expanduser() / sub if sub else Path(source).expanduser()
        describe = f"{what} '{source}'" + (f" subfolder '{sub}'" if sub else "")
        files = [WeightFile(folder / DIFFUSERS_CONFIG_NAME, f"{describe} config")]
        return files + _diffusers_weight_files(folder, describe, lambda _name: None)

    snapshot, ref_needed = hf_snapshot_dir(source, revision)
    folder = snapshot / sub if sub else snapshot
    describe = f"{what} {source}" + (f" ({sub}/)" if sub else "") + " in the Hugging Face cache"

    def url_for(name: str) -> str:
        return hf_hub_url(source, f"{sub}/{name}" if sub else name, revision)

    files = [] if ref_needed is None else [ref_needed]
    files.append(WeightFile(folder / DIFFUSERS_CONFIG_NAME, f"{describe}: config", url_for(DIFFUSERS_CONFIG_NAME)))
    return files + _diffusers_weight_files(folder, describe + ":", url_for)


def sha256_files(paths: list[Path], chunk: int = 1 << 20) -> tuple[str, dict[str, str]]:
    """sha256 over the concatenated contents of ``paths`` (in order), and each file's own sha256."""
    total = hashlib.sha256()
    each: dict[str, str] = {}
    for p in paths:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            while block := f.read(chunk):
                h.update(block)
                total.update(block)
        each[str(p)] = h.hexdigest()
    return total.hexdigest(), each


# --- the files of an autoencoder spec (latentopt.workflow.model_specs) ---------------------------


def required_weight_files(spec: dict) -> list[WeightFile]:
    """The pretrained files that must be on disk to load ``spec``. Synthetic models need nothing;
    a ``demo_trained`` model's weights are made by the pipeline itself (rule ``train_demo_model``),
    so they are not a prerequisite either."""
    s = normalize_spec(spec)
    kind = s["kind"]
    if kind in ("synthetic_kl", "demo_trained") or s.get("synthetic"):
        return []
    if kind == "taesd":
        return [
            WeightFile(
                Path(s[part]).expanduser(),
                f"{s['variant']} {part} state dict ({TAESD_REPO}, file {s['variant']}_{part}.pth)",
                taesd_url(s["variant"], part),
            )
            for part in ("encoder", "decoder")
        ]
    what = family_of(s).diffusers_class if kind != "diffusers" else s["class"]
    if s.get("preset"):
        what = f"preset {s['preset']} ({what})"
    return diffusers_model_files(s["source"], s["subfolder"], s["revision"], what)


def weights_revision(spec: dict) -> dict:
    """Which revision of the weights a spec loads, for the run's records: ``{"from", "requested",
    "commit", "text"}``. A hub model's commit is the name of the Hugging Face cache snapshot folder
    its files are read from (``refs/<revision>`` resolved, as huggingface_hub does; a 40-hex
    ``revision:`` is its own folder), so a run says exactly which weights it used even when the spec
    says ``main``. A local folder, TAESD ``.pth`` files, a synthetic or demo model have no hub
    commit: the record says so plainly (their files are identified by sha256 in ``weight_files``)."""
    s = normalize_spec(spec)
    kind = s["kind"]
    if kind in ("synthetic_kl",) or s.get("synthetic"):
        return {"from": "synthetic", "requested": None, "commit": None, "text": "synthetic: no weights"}
    if kind == "demo_trained":
        return {"from": "demo", "requested": None, "commit": None,
                "text": "demo autoencoder trained by the pipeline: no hub commit"}
    if kind == "taesd" or not is_hf_repo_id(s["source"]):
        return {"from": "local folder", "requested": s.get("revision"), "commit": None,
                "text": "local folder: no hub commit (files identified by their sha256)"}
    requested = s["revision"] or "main"
    snapshot, ref_needed = hf_snapshot_dir(s["source"], s["revision"])
    commit = snapshot.name if ref_needed is None and HF_COMMIT_RE.match(snapshot.name) else None
    text = (f"{s['source']}@{commit}" + ("" if requested == commit else f" ({requested})") if commit
            else f"{s['source']} ({requested}): snapshot commit not resolved")
    return {"from": "hub", "requested": requested, "commit": commit, "text": text}


def _raise_missing(files: list[WeightFile], reason: str, cause: BaseException | None = None):
    try:
        require(files)
    except MissingWeightsError as err:
        raise MissingWeightsError(f"{reason}; {err}") from cause
    raise MissingWeightsError(f"{reason}; weight files still unusable: {[str(f.path) for f in files]}")


def fetch_weights(spec: dict) -> list[WeightFile]:
    """Download whatever :func:`required_weight_files` reports missing; return the file list.

    Hub models go through ``huggingface_hub.snapshot_download`` into the hub cache (only the
    config and weights of the needed subfolder); TAESD checkpoints come from madebyollin/taesd on
    GitHub. With no network (or HF_HUB_OFFLINE=1) it raises MissingWeightsError listing each
    missing file and where to put it. Local diffusers folders cannot be fetched.
    """
    s = normalize_spec(spec)
    files = required_weight_files(s)
    missing = [f for f in files if not f.exists()]
    if not missing:
        return files
    kind = s["kind"]
    if kind in DIFFUSERS_KINDS and not is_hf_repo_id(s["source"]):
        _raise_missing(files, f"local folder {s['source']!r} is incomplete (nothing to download)")
    if offline():
        _raise_missing(files, "offline (HF_HUB_OFFLINE set), not downloading")

    if kind == "taesd":
        for f in missing:
            part = "encoder" if f.path == Path(s["encoder"]).expanduser() else "decoder"
            url = taesd_url(s["variant"], part)
            try:
                download_url(url, f.path)
            except (OSError, ValueError) as exc:
                _raise_missing(files, f"download of {url} failed ({type(exc).__name__}: {exc})", exc)
        require(files)
        return files

    sub = (s["subfolder"] or "").strip("/")
    prefix = f"{sub}/" if sub else ""
    try:
        # huggingface_hub (optional, heavy) only on this path: a hub model that must be downloaded
        from huggingface_hub import snapshot_download

        for pattern in DIFFUSERS_WEIGHTS_NAMES:  # safetensors first; .bin only if absent
            snapshot_download(
                s["source"],
                revision=s["revision"],
                cache_dir=str(hf_hub_cache_dir()),
                allow_patterns=[
                    prefix + DIFFUSERS_CONFIG_NAME,
                    prefix + pattern,
                    prefix + pattern + ".index.json",
                    prefix + "diffusion_pytorch_model-*" + Path(pattern).suffix,
                ],
            )
            files = required_weight_files(s)
            if all(f.exists() for f in files):
                return files
    except Exception as exc:  # network, auth, offline-mode and not-found errors alike
        _raise_missing(
            required_weight_files(s),
            f"could not download {s['source']} from the Hugging Face hub "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})",
            exc,
        )
    _raise_missing(files, f"{s['source']} downloaded but incomplete")


# --- what a pipeline config needs ---------------------------------------------------------------


def metric_weight_files(config: dict) -> list:
    """torch.hub checkpoints of the LPIPS trunks and the FID Inception this config needs."""
    nets = set()
    for arm in selected_losses(config):
        nets |= lpips_nets(config["losses"][arm]["loss"])
    if not config["metric_networks"]["lpips_random_trunk"]:
        nets.update(config["evaluation"]["lpips_nets"])
    files = [torch_hub_checkpoint(f"lpips_{net}") for net in sorted(nets)]
    if config["evaluation"]["fid"] and not config["metric_networks"]["inception_synthetic"]:
        files.append(torch_hub_checkpoint("fid_inception"))
    return files


def required_weights(config: dict) -> list:
    """Every pretrained file some job of this config will need (checked before any job runs)."""
    return [*required_weight_files(model_spec(config)), *metric_weight_files(config)]


def ensure_weights(config: dict) -> None:
    """Download what this config needs and lacks (unless offline, see :func:`offline`), then
    raise MissingWeightsError naming every file still missing and where it must go."""
    ensure_all_weights([config])


def ensure_all_weights(configs: list[dict]) -> None:
    """:func:`ensure_weights` of several one-model configs (a study's), with ONE error naming every
    file still missing of all of them."""
    files = _unique(f for config in configs for f in required_weights(config))
    if all(f.exists() for f in files):
        return
    if not offline():
        for config in configs:
            try:
                fetch_weights(model_spec(config))
            except MissingWeightsError:
                pass  # reported below together with the rest
            for f in metric_weight_files(config):
                if not f.exists():
                    try:
                        download_url(f.url, f.path)
                    except OSError:
                        pass
    require(files)


def missing_weights_report(configs: list[dict]) -> str | None:
    """What a dry run says: every file the configs' jobs need that is not on disk (nothing is
    downloaded), in one message with the offline routes; None when nothing is missing."""
    try:
        require(_unique(f for config in configs for f in required_weights(config)))
    except MissingWeightsError as err:
        return f"a real run would first download or need: {err}"
    return None


def _unique(files) -> list[WeightFile]:
    seen: dict[Path, WeightFile] = {}
    for f in files:
        seen.setdefault(f.path, f)
    return list(seen.values())
