"""Where pretrained weight files live, and the error raised when one is missing.

Pure Python (no torch import): the Snakefile calls these at parse time to stop before any job
runs when a file that a job will need is absent and cannot be downloaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

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
    import urllib.request

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
            f"{len(missing)} weight file(s) missing (no download possible offline):\n  {lines}"
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
