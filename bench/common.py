"""Shared by the benchmark modules: paths, logging, machine facts, JSON output."""

from __future__ import annotations

import copy
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LIBRARY = REPO / "workflow_scripts"
if str(LIBRARY) not in sys.path:
    sys.path.insert(0, str(LIBRARY))
SHARED = Path(os.environ.get("LATENTOPT_SHARED", REPO.parent / "shared"))
BSDS_IMAGES = SHARED / "data" / "BSR" / "BSDS500" / "data" / "images"
TAEF2_DIR = SHARED / "models" / "taef2"
SCHEMA_VERSION = "latentopt-benchmark/1"


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=20)
        return out.stdout.strip() if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def _mean(xs):
    xs = [x for x in xs if x is not None and math.isfinite(x)]
    return statistics.fmean(xs) if xs else None


def _sync(device):
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)



def _merge(a: dict, b: dict) -> dict:
    for k, v in b.items():
        if isinstance(v, dict) and isinstance(a.get(k), dict):
            _merge(a[k], v)
        else:
            a[k] = copy.deepcopy(v)
    return a



def _finite(obj):
    """JSON-safe copy: non-finite floats (e.g. PSNR of an exact reconstruction) become null."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def write_json(result: dict, path: Path) -> None:
    """Atomically write the (JSON-safe) result to path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(_finite(result), indent=1, allow_nan=False, default=str))
    os.replace(tmp, path)


def run_recorded(schema: str, run, fmt, out: Path, **meta) -> int:
    """One section that stands alone (--scale, --scale-stages, --evaluation): ``run()``'s result
    inside the record of where it ran (git commit and whether tracked files changed, CPU model,
    ``meta``, load before and after, wall time), written to ``out`` as JSON, then ``fmt(result)``
    and that record printed."""
    started = time.time()
    result = {"schema": schema, "git": _git("rev-parse", "HEAD"),
              "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")), "cpu_model": _cpu_model(),
              **meta, "loadavg_start": _loadavg(), **run()}
    result["loadavg_end"] = _loadavg()
    result["wall_s"] = round(time.time() - started, 1)
    write_json(result, Path(out))
    print(fmt(result))
    print(f"\n(git {result['git']}{' + changes' if result['git_dirty'] else ''}; {result['cpu_model']}; "
          f"load {result['loadavg_start']} -> {result['loadavg_end']}; wall {result['wall_s']} s; raw: {out})")
    return 0


def partial_path(out) -> Path:
    """Where a run writes what it has measured so far (removed once the full JSON is written)."""
    return Path(out).with_suffix(".partial.json")

