"""Progress of a run, while it runs or afterwards: images done/failed/remaining per arm,
throughput and ETA, from the per-image records on disk (independent of Snakemake).

    python -m latentopt.workflow.progress [--configfile demo/config.yaml] [--config key=value ...] [--watch 10]

(run from the repository root with PYTHONPATH=workflow_scripts, or `make progress`).
"""

from __future__ import annotations

import argparse
import json
import time

import yaml

from latentopt.workflow import layout
from latentopt.workflow.config import load_config
from latentopt.workflow.plan import build_plan


def progress(config: dict, window_s: float = 600.0, now: float | None = None) -> dict:
    """Per arm: total, ok, failed, remaining, in_progress (checkpointed batches), throughput
    (images/min over the last ``window_s``) and ETA in seconds (None when unknown)."""
    now = time.time() if now is None else now
    plan = build_plan(config)
    results = config["results_dir"]
    out = {}
    for arm in plan.arms:
        ok = failed = 0
        finished = []
        for split, entries in plan.splits.items():
            for e in entries:
                path = layout.per_image(results, arm, split, e.image_id, "json")
                if not path.is_file():
                    continue
                try:
                    record = json.loads(path.read_text())
                except (OSError, ValueError):
                    continue
                ok += record["status"] == "ok"
                failed += record["status"] != "ok"
                if record.get("finished_at"):
                    finished.append(record["finished_at"])
        total = plan.n_images
        remaining = total - ok - failed
        recent = [t for t in finished if now - t <= window_s]
        rate = len(recent) / (window_s / 60) if recent else 0.0
        in_progress = sum(len(list(layout.checkpoint_dir(results, arm, split).glob("batch-*.pt"))) for split in plan.splits)
        out[arm] = {
            "total": total, "ok": ok, "failed": failed, "remaining": remaining,
            "in_progress_batches": in_progress,
            "images_per_min": rate,
            "eta_s": (remaining / rate * 60) if rate > 0 and remaining else (0.0 if not remaining else None),
        }
    return out


def format_table(status: dict) -> str:
    lines = [f"{'arm':<12}{'done':>6}{'failed':>8}{'left':>6}{'running':>9}{'img/min':>9}{'ETA':>9}"]
    for arm, s in status.items():
        eta = "-" if s["eta_s"] is None else time.strftime("%H:%M:%S", time.gmtime(s["eta_s"]))
        lines.append(f"{arm:<12}{s['ok']:>6}{s['failed']:>8}{s['remaining']:>6}{s['in_progress_batches']:>9}{s['images_per_min']:>9.1f}{eta:>9}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configfile", action="append", default=[])
    parser.add_argument("--config", nargs="*", default=[], help="key=value overrides (dotted keys)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--watch", type=float, default=0, help="refresh every N seconds")
    args = parser.parse_args(argv)
    overrides = {k: yaml.safe_load(v) for k, _, v in (item.partition("=") for item in args.config)}
    config = load_config(args.configfile, overrides)
    while True:
        status = progress(config)
        print(json.dumps(status, indent=2) if args.json else format_table(status), flush=True)
        if not args.watch or all(s["remaining"] == 0 for s in status.values()):
            break
        time.sleep(args.watch)
        print()


if __name__ == "__main__":
    main()
