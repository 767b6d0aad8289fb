"""What a results folder already holds is taken as done only if it still verifies.

Every output kind, and how it is verified, is declared in one place:
:func:`latentopt.workflow.layout.declared_outputs` (the Snakefile's ``rule all`` asks for the same
list). This module walks that declaration; :data:`VERIFIERS` has one check per verification named
in ``layout.VERIFY`` (a kind with an unknown verification cannot be declared):

  * ``prepared``: the preparation record parses and has a status; the source image's sha256 equals
    the record's ``source_sha256`` (always hashed in full: a copy with preserved times, a restored
    backup or ``rsync -t`` keeps the modification time while the content changed); the reference
    PNG matches the record's ``sha256``;
  * ``per_image``: the record parses and has a status, its ``.pt`` matches ``pt_sha256``;
  * ``manifest``: a dataset's ``.pt`` and every PNG of its tree match the dataset manifest
    (``<arm>_dataset/manifest.json``, see latentopt.data.datasets), and no PNG is missing or extra;
  * ``json`` / ``csv``: the file parses (CSV: a header, no ragged row, a complete last line);
  * ``zip``: weights and features (torch ``.pt``, numpy ``.npz``) are zip archives whose directory
    and member CRCs read back (torch-free: nothing is unpickled);
  * ``png_dir``: every PNG of the folder has its signature and ends with an IEND chunk;
  * ``text``: UTF-8, not empty.

When: the Snakefile calls :func:`quarantine_damaged` in the driver while it is parsed, before
Snakemake plans (dry runs and ``--summary`` included). Each output that fails, with the files
verified through it (a record's PNG or ``.pt``, a dataset's ``.pt``, the damaged file itself), is
moved to ``results_dir/.integrity/quarantine/<timestamp>/`` (same relative paths; each move is
logged). Snakemake then plans normally: a declared output that is missing is made again, and what
depends on it is rerun; nothing else is redone. The moves happen under the driver lock
(latentopt.workflow.driverlock); when another driver holds it, or the folder cannot be written,
nothing is moved and a warning says so. A dry run therefore also quarantines: the files were
damaged, and the move is reversible (move them back by hand).

Outputs (not sources) are hashed or parsed again only when their size, mtime or ctime differ from
the hash cache ``results_dir/.integrity/hash_cache.json``; ``LATENTOPT_VERIFY=full`` checks
everything (a bit flip that leaves size and times unchanged, e.g. silent disk corruption, is only
seen then). The cache is written only when it changed; entries of files that no longer exist are
dropped; a damaged or wrong-shaped cache is discarded with a warning.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from latentopt.workflow import driverlock, layout
from latentopt.workflow.config import arm_settings, demo_model_summary, demo_model_weights
from latentopt.core.fileio import as_json, read_json, sha256_file, write_json
from latentopt.workflow.sources import source_sha256

CACHE_NAME = Path(".integrity") / "hash_cache.json"
QUARANTINE = Path(".integrity") / "quarantine"
CACHE_FORMAT = "latentopt-hash-cache/1"
FULL_ENV = "LATENTOPT_VERIFY"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"


@dataclass(frozen=True)
class Finding:
    """A declared output whose job must run again, why, and the files to move aside with it."""

    output: Path
    reason: str
    files: tuple[Path, ...] = field(default=())


def _valid_entry(entry) -> bool:
    return (isinstance(entry, list) and len(entry) == 4 and all(isinstance(v, int) and not isinstance(v, bool) for v in entry[:3])
            and isinstance(entry[3], str))


class HashCache:
    """sha256 (or a passed check) of files under ``root``, trusted while (size, mtime, ctime) are unchanged."""

    def __init__(self, root: str | Path, full: bool = False, log: Callable[[str], None] = print):
        self.root = Path(root)
        self.path = self.root / CACHE_NAME
        self.full = full
        self.hashed = 0
        self.changed = False
        self.entries: dict[str, list] = {}
        if self.path.exists():
            self.entries = self._load(log)
        if full:
            self.entries, self.changed = {}, True
        self._written = None if self.changed else json.dumps(self.entries, sort_keys=True)  # what the file holds

    def _load(self, log) -> dict[str, list]:
        try:
            data = read_json(self.path)
        except (OSError, ValueError) as exc:
            log(f"integrity: discarding the hash cache {self.path}: {exc} (everything is checked again)")
            self.changed = True
            return {}
        files = data.get("files") if isinstance(data, dict) else None
        if not isinstance(files, dict) or not all(isinstance(k, str) and _valid_entry(v) for k, v in files.items()):
            log(f"integrity: discarding the hash cache {self.path}: not a {CACHE_FORMAT} file (everything is checked again)")
            self.changed = True
            return {}
        return dict(files)

    def _key(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)

    @staticmethod
    def _stamp(path: Path) -> list[int]:
        st = os.stat(path)
        return [st.st_size, st.st_mtime_ns, st.st_ctime_ns]

    def _remember(self, key: str, entry: list) -> None:
        self.entries[key] = entry

    def sha256(self, path: str | Path) -> str:
        """The file's sha256 (raises OSError when it cannot be read)."""
        path = Path(path)
        stamp, key = self._stamp(path), self._key(path)
        cached = self.entries.get(key)
        if cached and cached[:3] == stamp and not cached[3].startswith("ok:"):
            return cached[3]
        digest = sha256_file(path)
        self.hashed += 1
        self._remember(key, [*stamp, digest])
        return digest

    def checked(self, path: Path, verify: str, check: Callable[[Path], str | None]) -> str | None:
        """``check(path)`` (a problem, or None), skipped while the file is unchanged since it passed."""
        stamp, key = self._stamp(path), self._key(path)
        mark = f"ok:{verify}"
        if self.entries.get(key) == [*stamp, mark]:
            return None
        problem = check(path)
        if problem is None:
            self._remember(key, [*stamp, mark])
        return problem

    def save(self) -> bool:
        """Write the cache if it changed, without entries of vanished files; False where nothing was
        written (unchanged, or a folder that cannot be written: a read-only results folder)."""
        if not self.root.is_dir():
            return False
        for key in [k for k in self.entries if not (self.root / k).exists()]:
            del self.entries[key]
        now = json.dumps(self.entries, sort_keys=True)
        if now == self._written:
            return False
        try:
            write_json(self.path, {"format": CACHE_FORMAT, "files": self.entries})
        except OSError:
            return False
        self._written = now
        return True


# -- the checks, one per verification of layout.VERIFY ------------------------------------------
@dataclass
class _Context:
    config: dict
    results: Path
    cache: HashCache
    sources: dict  # prepared record path -> ImageEntry (its source)


def _record(path: Path, required: str = "status") -> tuple[dict | None, str | None]:
    try:
        record = read_json(path)
    except (OSError, ValueError) as exc:
        return None, f"{path} cannot be read ({exc})"
    if not isinstance(record, dict) or required not in record:
        return None, f"{path} is not a complete record"
    return record, None


def _matches(cache: HashCache, path: Path, expected: str | None, what: str) -> str | None:
    try:
        digest = cache.sha256(path)
    except OSError as exc:
        return f"{what} {path} cannot be read ({exc.strerror or exc})"
    if digest != expected:
        return f"{what} {path} does not match its recorded checksum"
    return None


def reference_problem(results: str | Path, split: str, image_id: str, record: dict, sha256=sha256_file) -> str | None:
    """Why the reference PNG of a prepared record ('ok') is not the one prepare wrote, or None.
    The one check of a reference: planning (here) and the optimization job (latentopt.optimize.items) use it."""
    png = layout.original_png(results, split, image_id)
    try:
        digest = sha256(png)
    except OSError as exc:
        return f"reference {png} cannot be read ({exc.strerror or exc})"
    if digest != record.get("sha256"):
        return f"reference {png} does not match its recorded checksum"
    return None


def _check_prepared(out: layout.Output, ctx: _Context):
    record, problem = _record(out.path)
    if problem:
        return problem, ()
    entry = ctx.sources[out.path]
    if record.get("source_sha256") != source_sha256(entry.path):
        return f"source {entry.path} changed since it was prepared (sha256 differs)", ()
    if record["status"] == "ok" and record.get("preprocess") != as_json(ctx.config["preprocess"]):
        return f"{out.path} was prepared with other preprocess settings ({record.get('preprocess')})", ()
    if record["status"] == "ok":
        return reference_problem(ctx.results, entry.split, entry.image_id, record, ctx.cache.sha256), ()
    return None, ()


def _changes(old, new, prefix="") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        return [c for k in sorted(set(old) | set(new)) for c in _changes(old.get(k), new.get(k), f"{prefix}{k}.")]
    return [] if old == new else [f"{prefix.rstrip('.')} {old!r} -> {new!r}"]


def _portable(obj, root):
    """Paths under the results folder written relative to it (a copied or moved folder keeps its settings)."""
    if isinstance(obj, str) and root and (obj == root or obj.startswith(root.rstrip("/") + "/")):
        return "<results_dir>" + obj[len(root.rstrip("/")):]
    if isinstance(obj, dict):
        return {k: _portable(v, root) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_portable(v, root) for v in obj]
    return obj


def _check_settings(out: layout.Output, ctx: _Context):
    """The arm's settings file is stale when the config now gives other settings: moved aside, its
    job (record_settings) runs again, and with it every optimization job of the arm, in this run,
    whether or not Snakemake's own metadata is there (a copied or restored folder)."""
    record, problem = _record(out.path, required="settings")
    if problem:
        return problem, ()
    arm = out.path.name.removesuffix(".json")
    now = _portable(as_json(arm_settings(ctx.config, arm)), str(ctx.config["results_dir"]))
    recorded = _portable(record["settings"], record.get("results_dir"))
    if recorded != now:
        changed = "; ".join(_changes(recorded, now)[:5])
        return f"the settings of {arm} changed ({changed}): its results are redone", ()
    return None, ()


def _check_per_image(out: layout.Output, ctx: _Context):
    record, problem = _record(out.path)
    if problem:
        return problem, ()
    return _matches(ctx.cache, out.companions[0], record.get("pt_sha256"), "per-image file"), ()


def _check_manifest(out: layout.Output, ctx: _Context):
    manifest, problem = _record(out.path, required="files")
    if problem:
        return problem, ()
    root = out.path.parent
    files = manifest.get("files", {})
    if not isinstance(files, dict):
        return f"{out.path} is not a complete record", ()
    for rel, digest in files.items():
        problem = _matches(ctx.cache, root / rel, digest, "dataset file")
        if problem:
            return problem, (root / rel,)
    png_dir = root / "png"
    present = {p.relative_to(root).as_posix() for p in png_dir.rglob("*.png")} if png_dir.is_dir() else set()
    extra = sorted(present - set(files))
    if extra:
        return f"dataset {root.name}: {root / extra[0]} is not in {out.path.name}", tuple(root / e for e in extra)
    return None, ()


def _parse_json(path: Path) -> str | None:
    try:
        json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return f"{path} cannot be read as JSON ({exc})"
    return None


def _parse_csv(path: Path) -> str | None:
    try:
        text = path.read_text()
    except (OSError, ValueError) as exc:
        return f"{path} cannot be read ({exc})"
    rows = list(csv.reader(text.splitlines()))
    if not text.endswith("\n") or not rows or not rows[0]:
        return f"{path} is not a complete CSV table (empty or cut off)"
    ragged = next((i for i, row in enumerate(rows[1:], start=2) if len(row) != len(rows[0])), None)
    if ragged is not None:
        return f"{path} is not a complete CSV table (line {ragged} has not {len(rows[0])} fields)"
    return None


def _parse_zip(path: Path) -> str | None:
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
    except (OSError, zipfile.BadZipFile, EOFError, ValueError) as exc:
        return f"{path} is not a loadable archive ({exc})"
    return f"{path} is damaged (member {bad} fails its CRC)" if bad else None


def _png_problem(path: Path) -> str | None:
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(PNG_SIGNATURE))
            fh.seek(max(0, os.path.getsize(path) - len(PNG_END)))
            tail = fh.read()
    except OSError as exc:
        return f"{path} cannot be read ({exc.strerror or exc})"
    return None if head == PNG_SIGNATURE and tail == PNG_END else f"{path} is not a complete PNG"


def _parse_text(path: Path) -> str | None:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, ValueError) as exc:
        return f"{path} cannot be read as text ({exc})"
    return None if text.strip() else f"{path} is empty"


def _parsed(check):
    def run(out: layout.Output, ctx: _Context):
        return ctx.cache.checked(out.path, out.verify, check), ()

    return run


def _check_png_dir(out: layout.Output, ctx: _Context):
    for png in sorted(out.path.rglob("*.png")):
        problem = ctx.cache.checked(png, out.verify, _png_problem)
        if problem:
            return problem, ()
    return None, ()


VERIFIERS = {
    "settings": _check_settings,
    "prepared": _check_prepared,
    "per_image": _check_per_image,
    "manifest": _check_manifest,
    "json": _parsed(_parse_json),
    "csv": _parsed(_parse_csv),
    "zip": _parsed(_parse_zip),
    "png_dir": _check_png_dir,
    "text": _parsed(_parse_text),
}
assert set(VERIFIERS) == set(layout.VERIFY), "every verification of layout.VERIFY needs its check here"


def plan_entries(plan) -> list:
    return [e for split_entries in plan.splits.values() for e in split_entries]


def outputs_of(config: dict, plan) -> list[layout.Output]:
    """The declared outputs of this config's run (layout.declared_outputs)."""
    demo = (demo_model_weights(config), demo_model_summary(config)) if config["model"]["kind"] == "demo_trained" else None
    return layout.declared_outputs(config["results_dir"], plan_entries(plan), plan.arms, plan.gate_arms,
                                   fid=bool(config["evaluation"]["fid"]), demo_model=demo)


def verify_results(config: dict, plan, log: Callable[[str], None] = print, full: bool | None = None) -> list[Finding]:
    """Check every declared output that exists (see the module docstring); return those to redo.
    Reads only, but for the hash cache (written when it changed, where the folder can be written)."""
    results = Path(config["results_dir"])
    if not results.is_dir():
        return []
    full = os.environ.get(FULL_ENV, "").lower() == "full" if full is None else full
    cache = HashCache(results, full=full, log=log)
    ctx = _Context(config, results, cache, {layout.prepared_record(results, e.split, e.image_id): e for e in plan_entries(plan)})
    findings: list[Finding] = []
    redone: set[tuple[str, str]] = set()  # images prepared again: their jobs rerun downstream anyway
    for out in outputs_of(config, plan):
        if not out.path.exists():
            continue  # missing: Snakemake makes it again
        if out.verify == "per_image" and (out.path.parent.name, out.path.name.removesuffix(".json")) in redone:
            continue
        problem, damaged = VERIFIERS[out.verify](out, ctx)
        if problem:
            findings.append(Finding(out.path, problem, tuple(dict.fromkeys([*out.companions, *damaged]))))
            if out.verify == "prepared":
                entry = ctx.sources[out.path]
                redone.add((entry.split, entry.image_id))
    cache.save()
    return findings


def quarantine(results: str | Path, findings: list[Finding], log: Callable[[str], None] = print,
               stamp: str | None = None) -> list[tuple[Path, Path]]:
    """Move each finding's output and files into ``.integrity/quarantine/<stamp>/`` (relative paths
    kept); return the (from, to) moves."""
    results = Path(results)
    stamp = stamp or time.strftime("%Y%m%dT%H%M%S") + f"-{os.getpid()}"
    folder = results / QUARANTINE / stamp
    moves = []
    for f in findings:
        mine = []
        for path in dict.fromkeys([f.output, *f.files]):
            if not (path.exists() or path.is_symlink()):
                continue
            try:
                rel = path.relative_to(results)
            except ValueError:
                continue  # never move anything outside the results folder (sources stay where they are)
            dest = folder / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(path), str(dest))
            mine.append((path, dest))
        log(f"integrity: {f.reason}; moved to {folder}: " + ", ".join(str(p.relative_to(results)) for p, _ in mine))
        moves += mine
    return moves


def quarantine_damaged(config: dict, plan, log: Callable[[str], None] = print, full: bool | None = None) -> list[Finding]:
    """The driver's check before planning: verify, and move what fails to quarantine under the driver
    lock (skipped, with a warning, when another driver holds it or the folder cannot be written)."""
    findings = verify_results(config, plan, log=log, full=full)
    if not findings:
        return findings
    results = Path(config["results_dir"])
    try:
        lock = driverlock.acquire(results, log=log)
    except (driverlock.LockHeld, OSError) as exc:
        for f in findings:
            log(f"integrity: {f.reason}")
        log(f"integrity: NOT moving the {len(findings)} damaged output(s) above to quarantine: {exc}")
        return findings
    try:
        quarantine(results, findings, log=log)
    except OSError as exc:
        log(f"integrity: could not move damaged outputs to quarantine: {exc}")
    finally:
        lock.release()
    return findings
