"""What a results folder already holds is taken as done only if it still verifies.

Every output kind, and how it is verified, is declared in one place:
:func:`latentopt.workflow.layout.declared_outputs` (the Snakefile's ``rule all`` asks for the same
list). This module walks that declaration; :data:`VERIFIERS` has one check per verification named
in ``layout.VERIFY`` (a kind with an unknown verification cannot be declared):

  * ``prepared``: a preparation job's chunk manifest (latentopt.workflow.chunks): every record and
    reference PNG it lists matches the checksum recorded when it was written; every source's sha256
    equals the one read when it was prepared (hashed again where its size, mtime or ctime changed
    since: a copy with preserved times, a restored backup or ``rsync -t`` keeps the modification
    time but not the ctime); its preprocessing equals the config's;
  * ``chunk``: an optimization job's chunk manifest: every per-image ``.json`` and ``.pt`` it lists
    matches the checksum recorded when it was written. A damaged or deleted per-image file has its
    manifest planned again (and moved aside with the file by a real run): the job restores the
    chunk's intact images and computes the others (latentopt.optimize.records.restorable);
  * ``manifest``: a dataset's ``.pt`` and every PNG of its tree match the dataset manifest
    (``<arm>_dataset/manifest.json``, see latentopt.data.datasets), and no PNG is missing or extra;
  * every other kind (``json``, ``csv``, ``zip``, ``png_dir``, ``text``, and the records,
    manifests and settings files above): the file equals what its writer recorded beside it
    (``.<name>.sha256``, latentopt.core.fileio: every writer records one, atomically with the
    file), so a cut at a line boundary, a cut report or one changed digit is found. A file without
    a record (written before records existed) falls back to a parse check: JSON parses; CSV has a
    header, no ragged row, a complete last line; zip archives (torch ``.pt``, numpy ``.npz``) read
    back with their CRCs (torch-free); PNGs have their signature and IEND; text is UTF-8, not empty;
  * ``settings`` also: the settings it records equal the config's now. When they do not, the file
    is not damaged but outdated: record_settings is planned again, as Snakemake's params trigger
    would (also in a folder without Snakemake's metadata), and the arm's jobs follow.

When: :func:`inspect` runs in the driver while the Snakefile is parsed, before Snakemake plans, and
reads only (dry runs, ``--summary``, ``--lint``, ``--report`` change nothing). The rules hand the
outputs of what it found to Snakemake as forced files (``--forcerun``; rules/common.smk), so the
plan of every command, dry runs included, shows their jobs and what depends on them, and a dry run
lists each damaged file with what a real run will move aside. Only a real run acts, in its
``onstart`` (after planning, before the first job, under the driver lock: :func:`apply`): each
damaged output, with the files verified through it, is moved to
``results_dir/.integrity/quarantine/<timestamp>/`` (same relative paths; each move logged); the
forced jobs then make them again. Damage that cannot be moved aside stops the run (non-zero exit,
saying why). A settings file that is missing or damaged is written again by its job; the arm's jobs
then run again and restore every finished image whose fingerprint still matches the config instead
of optimizing it again (latentopt.optimize.records.restorable).

Speed: a file whose size and mtime equal its record is taken as unchanged; anything else is hashed.
Per-image files are verified through their chunk's manifest (one read per job, one stat per file),
so planning costs grow with jobs and files, never with reading every per-image record.
Files without a record, and the files a record or manifest names, are hashed or parsed again only
when their size, mtime or ctime differ from the hash cache ``results_dir/.integrity/hash_cache.json``
(written by real runs only). ``LATENTOPT_VERIFY=full`` hashes everything (a bit flip that leaves
size and times unchanged, e.g. silent disk corruption, is only seen then). A damaged or
wrong-shaped cache is discarded with a warning.
"""

from __future__ import annotations

import csv
import json
import os
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from latentopt.workflow import chunks, layout
from latentopt.workflow.config import arm_settings, demo_model_summary, demo_model_weights
from latentopt.core.fileio import Recorded, as_json, checksum_record, move_with_record, read_json, recorded, sha256_file, stat_stamp, write_json

CACHE_NAME = Path(".integrity") / "hash_cache.json"
QUARANTINE = Path(".integrity") / "quarantine"
CACHE_FORMAT = "latentopt-hash-cache/1"
FULL_ENV = "LATENTOPT_VERIFY"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"


@dataclass(frozen=True)
class Finding:
    """A declared output whose job must run again, why, and the files a real run moves aside
    first (none for an intact file that is only outdated: a settings file the config changed)."""

    output: Path
    reason: str
    files: tuple[Path, ...] = field(default=())
    damaged: bool = True


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

    def _remember(self, key: str, entry: list) -> None:
        self.entries[key] = entry

    def sha256(self, path: str | Path) -> str:
        """The file's sha256 (raises OSError when it cannot be read)."""
        path = Path(path)
        stamp, key = stat_stamp(path), self._key(path)
        cached = self.entries.get(key)
        if cached and cached[:3] == stamp and not cached[3].startswith("ok:"):
            return cached[3]
        digest = sha256_file(path)
        self.hashed += 1
        self._remember(key, [*stamp, digest])
        return digest

    def matches(self, path: Path, rec: Recorded) -> bool:
        """Whether ``path`` is what its writer recorded: by size and mtime (unless full), else by sha256."""
        if not self.full and rec.same_stat(path):
            return True
        return self.sha256(path) == rec.sha256

    def checked(self, path: Path, verify: str, check: Callable[[Path], str | None]) -> str | None:
        """``check(path)`` (a problem, or None), skipped while the file is unchanged since it passed."""
        stamp, key = stat_stamp(path), self._key(path)
        mark = f"ok:{verify}"
        if self.entries.get(key) == [*stamp, mark]:
            return None
        problem = check(path)
        if problem is None:
            self._remember(key, [*stamp, mark])
        return problem

    def save(self) -> bool:
        """Write the cache if it changed, without entries of vanished files; False where nothing was
        written (unchanged, or a folder that cannot be written: a read-only results folder). Only a
        real run calls it (:func:`apply`): an inspection writes nothing."""
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
    sources: dict  # (split, image id) -> ImageEntry (its source)
    chunk_ids: dict  # chunk name -> the image ids the plan gives it


def _as_written(path: Path, ctx: _Context, verify: str, fallback: Callable[[Path], str | None]) -> str | None:
    """Why ``path`` is not the file its writer wrote, or None. Compared with the writer's checksum
    record; a file without one (written before records existed) is checked by ``fallback`` (a parse
    check, skipped while the hash cache says it passed unchanged)."""
    try:
        rec = recorded(path)
        if rec is None:
            return ctx.cache.checked(path, verify, fallback)
        if ctx.cache.matches(path, rec):
            return None
    except ValueError as exc:
        return f"{exc}: {path} cannot be verified"
    except OSError as exc:
        return f"{path} cannot be read ({exc.strerror or exc})"
    return f"{path} is not the file its writer wrote (its sha256 differs from the one recorded in {checksum_record(path).name}: changed or cut since)"


def _record(path: Path, ctx: _Context, required: str = "status") -> tuple[dict | None, str | None]:
    problem = _as_written(path, ctx, "json", _parse_json)
    if problem:
        return None, problem
    try:
        record = read_json(path)
    except (OSError, ValueError) as exc:
        return None, f"{path} cannot be read ({exc})"
    if not isinstance(record, dict) or required not in record:
        return None, f"{path} is not a complete record"
    return record, None


def _matches(cache: HashCache, path: Path, expected: str | None, what: str) -> str | None:
    """Whether ``path`` has the sha256 a record or manifest names (its own checksum record, when it
    says the same, answers by size and mtime)."""
    try:
        try:
            own = recorded(path)
        except ValueError:
            own = None
        if own is not None and own.sha256 == expected and not cache.full and own.same_stat(path):
            return None
        digest = cache.sha256(path)
    except OSError as exc:
        return f"{what} {path} cannot be read ({exc.strerror or exc})"
    if digest != expected:
        return f"{what} {path} does not match its recorded checksum"
    return None


def reference_problem(results: str | Path, split: str, image_id: str, record: dict, sha256=sha256_file) -> str | None:
    """Why the reference PNG of a prepared record ('ok') is not the one prepare wrote, or None: the
    optimization job's check (latentopt.optimize.items); planning compares the same checksum through
    :func:`_matches` (answered by the PNG's own record while its size and mtime are unchanged)."""
    png = layout.original_png(results, split, image_id)
    try:
        digest = sha256(png)
    except OSError as exc:
        return f"reference {png} cannot be read ({exc.strerror or exc})"
    if digest != record.get("sha256"):
        return f"reference {png} does not match its recorded checksum"
    return None


def _listed_problem(item: chunks.Listed, ctx: _Context, manifest: Path) -> str | None:
    """Why a file a chunk manifest lists is not the one written (None: it is): by size and mtime,
    hashed where they changed (always with LATENTOPT_VERIFY=full)."""
    try:
        if not ctx.cache.full and item.same_stat():
            return None
        digest = ctx.cache.sha256(item.path)
    except FileNotFoundError:
        return f"{item.path} is missing (listed in {manifest.name})"
    except OSError as exc:
        return f"{item.path} cannot be read ({exc.strerror or exc})"
    if digest != item.sha256:
        return f"{item.path} is not the file its job wrote (its sha256 differs from the one in {manifest.name}: changed or cut since)"
    return None


def _source_problem(recorded_source: dict | None, entry, ctx: _Context) -> str | None:
    """Why a source is not the one a preparation read (None: it is): unchanged (size, mtime, ctime)
    as read, or the same sha256."""
    was = recorded_source or {}
    try:
        if not ctx.cache.full and was.get("stat") == stat_stamp(entry.path):
            return None
        now = ctx.cache.sha256(entry.path)
    except OSError:
        now = None
    if now != was.get("sha256"):
        return f"source {entry.path} changed since it was prepared (sha256 differs)"
    return None


def _chunk_problems(out: layout.Output, ctx: _Context, required_kind: str):
    """The manifest verified against its writer's record, then every file it lists."""
    manifest, problem = _record(out.path, ctx, required="images")
    if problem:
        return None, problem, ()
    if manifest.get("format") != chunks.FORMAT or manifest.get("kind") != required_kind:
        return None, f"{out.path} is not a {required_kind} chunk manifest", ()
    try:
        listed = chunks.entries(out.path, manifest)
    except (KeyError, TypeError, ValueError):
        return None, f"{out.path} is not a complete chunk manifest", ()
    problems = [(item.path, p) for item in listed if (p := _listed_problem(item, ctx, out.path))]
    if problems:
        more = f" (and {len(problems) - 1} more file(s) of its chunk)" if len(problems) > 1 else ""
        return manifest, problems[0][1] + more, tuple(path for path, _ in problems)
    ids, planned = [str(item["id"]) for item in manifest["images"]], ctx.chunk_ids.get(out.path.stem)
    if planned is not None and ids != planned:  # images added, removed or renamed in the data folder
        gone, new = sorted(set(ids) - set(planned)), sorted(set(planned) - set(ids))
        return manifest, _Outdated(f"the images of chunk {out.path.stem} changed (new: {new[:3]}, gone: {gone[:3]}); "
                                   "its job restores the images it still holds"), ()
    return manifest, None, ()


def _check_prepared(out: layout.Output, ctx: _Context):
    manifest, problem, damaged = _chunk_problems(out, ctx, "prepare")
    if problem or manifest is None:
        return problem, damaged
    if any("png" in item["files"] for item in manifest["images"]) and manifest.get("preprocess") != as_json(ctx.config["preprocess"]):
        return f"{out.path} was prepared with other preprocess settings ({manifest.get('preprocess')})", ()
    split = manifest.get("split")
    for item in manifest["images"]:
        entry = ctx.sources.get((split, str(item["id"])))
        if entry is None:
            continue  # no longer planned in this chunk: the job's params changed, Snakemake reruns it
        problem = _source_problem(item.get("source"), entry, ctx)
        if problem:
            return problem, ()
    return None, ()


def _changes(old, new, prefix="") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        return [c for k in sorted(set(old) | set(new)) for c in _changes(old.get(k), new.get(k), f"{prefix}{k}.")]
    return [] if old == new else [f"{prefix.rstrip('.')} {old!r} -> {new!r}"]


def _check_settings(out: layout.Output, ctx: _Context):
    """A damaged settings file is moved aside and written again (its arm's finished images are
    restored by their jobs: :func:`seed_restores`). One the config now gives other settings is
    outdated, not damaged: its job (record_settings) runs again, and with it every optimization
    job of the arm, in this run, whether or not Snakemake's own metadata is there (a copied or
    restored folder); Snakemake's params trigger plans the same."""
    record, problem = _record(out.path, ctx, required="settings")
    if problem:
        return problem, ()
    arm = out.path.name.removesuffix(".json")
    now = layout.portable(as_json(arm_settings(ctx.config, arm)), str(ctx.config["results_dir"]))
    was = layout.portable(record["settings"], record.get("results_dir"))
    if was != now:
        changed = "; ".join(_changes(was, now)[:5])
        return _Outdated(f"the settings of {arm} changed ({changed}): its results are redone"), ()
    return None, ()


class _Outdated(str):
    """A problem that is no damage: the file is intact but the config asks for another one."""


def _check_chunk(out: layout.Output, ctx: _Context):
    _, problem, damaged = _chunk_problems(out, ctx, "optimize")
    return problem, damaged


def _check_manifest(out: layout.Output, ctx: _Context):
    manifest, problem = _record(out.path, ctx, required="files")
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
    """Verified against the writer's record; parsed by ``check`` when there is none."""
    def run(out: layout.Output, ctx: _Context):
        return _as_written(out.path, ctx, out.verify, check), ()

    return run


def _check_png_dir(out: layout.Output, ctx: _Context):
    for png in sorted(out.path.rglob("*.png")):
        problem = _as_written(png, ctx, out.verify, _png_problem)
        if problem:
            return problem, ()
    return None, ()


VERIFIERS = {
    "settings": _check_settings,
    "prepared": _check_prepared,
    "chunk": _check_chunk,
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
    return layout.declared_outputs(config["results_dir"], plan.chunks, plan.arms, plan.gate_arms,
                                   fid=bool(config["evaluation"]["fid"]), demo_model=demo)


def verify_results(config: dict, plan, log: Callable[[str], None] = print, full: bool | None = None,
                   cache: HashCache | None = None) -> list[Finding]:
    """Check every declared output that exists (see the module docstring); return those to redo.
    Reads only (the hash cache is updated in memory: ``cache``, saved by :func:`apply`)."""
    results = Path(config["results_dir"])
    if not results.is_dir():
        return []
    full = os.environ.get(FULL_ENV, "").lower() == "full" if full is None else full
    cache = cache or HashCache(results, full=full, log=log)
    ctx = _Context(config, results, cache, {(e.split, e.image_id): e for e in plan_entries(plan)},
                   {c.name: c.image_ids for c in plan.chunks})
    findings: list[Finding] = []
    for out in outputs_of(config, plan):
        if not out.path.exists():
            continue  # missing: Snakemake makes it again
        problem, damaged = VERIFIERS[out.verify](out, ctx)
        if problem:
            broken = not isinstance(problem, _Outdated)
            files = tuple(dict.fromkeys([*out.companions, *damaged])) if broken else ()
            findings.append(Finding(out.path, str(problem), files, damaged=broken))
    return findings


@dataclass
class Inspection:
    """What the check before planning found in one results folder; nothing is changed until a real
    run calls :func:`apply`."""

    results: Path
    findings: list[Finding]
    restore_arms: list[str]  # arms whose settings file is written again: their jobs restore finished images
    cache: HashCache | None = None

    def forced_files(self) -> list[str]:
        """The outputs whose jobs must run again (with what depends on them): Snakemake's forced files."""
        return [str(f.output) for f in self.findings]

    def plan_lines(self) -> list[str]:
        """What a real run will do about each finding (printed by every command, dry runs included)."""
        lines = []
        for f in self.findings:
            if f.damaged:
                moved = ", ".join(_rel(p, self.results) for p in dict.fromkeys([f.output, *f.files]) if p.exists() or p.is_symlink())
                lines.append(f"integrity: {f.reason}. Planned again with what depends on it; a real run first moves "
                             f"{moved} to {self.results / QUARANTINE}/<timestamp>/ (nothing is moved by a dry run)")
            else:
                lines.append(f"integrity: {f.reason}: {_rel(f.output, self.results)} is written again, with what depends on it")
        for arm in self.restore_arms:
            lines.append(f"integrity: the settings file of {arm} is written again; its jobs run again and restore each "
                         "finished image whose fingerprint still matches the config (no optimization is redone for them)")
        return lines


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def inspect(config: dict, plan, log: Callable[[str], None] = print, full: bool | None = None) -> Inspection:
    """The check before planning (reads only): the damaged or outdated outputs, and the arms whose
    settings file is missing or damaged while finished images of theirs exist."""
    results = Path(config["results_dir"])
    full = os.environ.get(FULL_ENV, "").lower() == "full" if full is None else full
    cache = HashCache(results, full=full, log=log) if results.is_dir() else None
    findings = verify_results(config, plan, log=log, full=full, cache=cache) if cache else []
    damaged_settings = {f.output for f in findings if f.damaged}
    restore = [arm for arm in plan.arms if arm != layout.BASELINE
               and (not layout.arm_settings_file(results, arm).exists() or layout.arm_settings_file(results, arm) in damaged_settings)
               and _has_files(layout.arm_dir(results, arm) / "per_image")]
    return Inspection(results, findings, restore, cache)


def _has_files(folder: Path) -> bool:
    """Whether any file lies under ``folder`` (stops at the first)."""
    return any(files for _, _, files in os.walk(folder))


class CannotRepair(RuntimeError):
    """Damage was found that cannot be moved aside (e.g. a read-only results folder)."""


def quarantine(results: str | Path, findings: list[Finding], log: Callable[[str], None] = print,
               stamp: str | None = None) -> list[tuple[Path, Path]]:
    """Move each damaged finding's output and files into ``.integrity/quarantine/<stamp>/`` (relative
    paths kept); return the (from, to) moves. An OSError (a folder that cannot be written) stops it."""
    results = Path(results)
    stamp = stamp or time.strftime("%Y%m%dT%H%M%S") + f"-{os.getpid()}"
    folder = results / QUARANTINE / stamp
    moves = []
    for f in findings:
        if not f.damaged:
            continue
        mine = []
        for path in dict.fromkeys([f.output, *f.files]):
            if not (path.exists() or path.is_symlink()):
                continue
            try:
                rel = path.relative_to(results)
            except ValueError:
                continue  # never move anything outside the results folder (sources stay where they are)
            dest = folder / rel
            move_with_record(path, dest)  # the writer's record goes with the file it describes
            mine.append((path, dest))
        log(f"integrity: {f.reason}; moved to {folder}: " + ", ".join(str(p.relative_to(results)) for p, _ in mine))
        moves += mine
    return moves


def apply(inspection: Inspection, log: Callable[[str], None] = print, planned: set[str] | None = None) -> None:
    """A real run's action on an inspection, before its first job (the caller holds the driver
    lock): damaged outputs moved to quarantine, the hash cache saved.
    ``planned``: the (absolute) outputs of the jobs the run will execute; a damaged output whose job
    is not among them stays in place (moved aside, it would be a missing input). Raises
    CannotRepair, saying why, where the folder cannot be changed."""
    findings = [f for f in inspection.findings if planned is None or os.path.abspath(f.output) in planned]
    try:
        quarantine(inspection.results, findings, log=log)
    except OSError as exc:
        damaged = [f for f in inspection.findings if f.damaged]
        raise CannotRepair(f"{len(damaged)} damaged output(s) in {inspection.results} cannot be moved aside "
                           f"({exc.strerror or exc}: {getattr(exc, 'filename', '') or ''}); "
                           "nothing was run. Make the folder writable and run again (a dry run lists them)") from exc
    if inspection.cache is not None:
        inspection.cache.save()


def other_arms_outputs(results: str | Path, arms) -> list[Path]:
    """Outputs in ``results`` of arms that are not in this run (e.g. a sweep value since removed):
    kept, never deleted; listed at the end of a run."""
    results = Path(results)
    arms = set(arms)
    found = [p for p in sorted(results.glob("*_dataset")) if p.is_dir() and p.name.removesuffix("_dataset") not in arms]
    for folder, suffix in ((results / ".settings", ".json"), (layout.evaluation_dir(results) / "per_image", ".csv"),
                           (results / "quality_gate", ".json"), (layout.evaluation_dir(results) / "features", ".npz")):
        found += [p for p in sorted(folder.glob(f"*{suffix}")) if p.name.removesuffix(suffix) not in arms
                  and p.name.removesuffix(suffix) != "original"]
    return found
