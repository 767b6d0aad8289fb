"""ETA error of the live status (issue 29): how far the ETA the live page showed was from the
time that was actually left, at 25 %, 50 % and 75 % of a run.

    # run a command (a snakemake run with --logger latentopt) and poll its live status file
    python bench/eta_error.py record --status RESULTS/live/status.json --out DIR -- snakemake ... --logger latentopt
    # the table of one or more recordings
    python bench/eta_error.py table DIR [DIR ...]
    # the same readings recomputed afterwards from the run's files by the current code
    python bench/eta_error.py replay --rec DIR --out DIR2 --configfile CONFIG [--config key=value ...]

``record`` starts the command, reads ``status.json`` every ``--every`` seconds (what the page
shows: the run's fraction done, images included fractionally, and its ETA) and appends one line
per reading to ``DIR/polls.jsonl``; ``DIR/run.json`` holds the command, its start, end and exit
status. ``replay`` recomputes every reading of a recording at its time from the finished run's
records and job logs (``latentopt.workflow.live.status(now=...)``: what a page rewritten then
would have shown), so two versions of the ETA compare on the same run. ``table`` takes, at each fraction, the first reading at or past it and compares its ETA
(times as m:ss) with the time actually left until the optimization ended (the first reading with nothing left:
the ETA is the one of the optimization jobs, `all` row) and until the command ended.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

FRACTIONS = (0.25, 0.5, 0.75)


def _reading(path: Path, t: float) -> dict | None:
    try:
        st = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    total = done = 0.0
    for m in st["models"].values():
        row = m["arms"]["all"]
        total += row["total"]
        done += row["ok"] + row["failed"] + row["partial"]
    return {"t": t, "updated_at": st["updated_at"], "state": st["state"], "total": total, "done": round(done, 3),
            "remaining": st["remaining"], "eta_s": st["eta_s"],
            "arms": {f"{model}/{arm}" if model else arm: {k: r[k] for k in ("ok", "failed", "partial", "running",
                                                                             "images_per_min", "eta_s")}
                     for model, m in st["models"].items() for arm, r in m["arms"].items()}}


def record(args) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    status = Path(args.status)
    polls = (out / "polls.jsonl").open("a")
    meta = {"command": args.command, "status": str(status), "every_s": args.every, "start": time.time()}
    try:
        meta["loadavg_start"] = list(map(float, Path("/proc/loadavg").read_text().split()[:3]))
    except OSError:
        pass
    log = (out / "run.log").open("w")
    proc = subprocess.Popen(args.command, stdout=log, stderr=subprocess.STDOUT)
    last = None
    loads = []
    while True:
        ended = proc.poll() is not None
        now = time.time()
        if status.exists() and status.stat().st_mtime >= meta["start"]:  # not a previous run's file
            r = _reading(status, now)
            if r is not None and r["updated_at"] != last:
                last = r["updated_at"]
                polls.write(json.dumps(r) + "\n")
                polls.flush()
        try:
            loads.append(float(Path("/proc/loadavg").read_text().split()[0]))
        except OSError:
            pass
        if ended:
            break
        time.sleep(args.every)
    meta.update(end=time.time(), returncode=proc.returncode,
                loadavg_1min_mean=round(sum(loads) / len(loads), 2) if loads else None,
                loadavg_1min_max=max(loads, default=None))
    (out / "run.json").write_text(json.dumps(meta, indent=1))
    sys.exit(proc.returncode)


def replay(args) -> None:
    import yaml

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow_scripts"))
    from latentopt.workflow import live
    from latentopt.workflow.config import load_config

    overrides = {k: yaml.safe_load(v) for k, _, v in (item.partition("=") for item in args.config)}
    config = load_config(args.configfile, overrides)
    rec, out = Path(args.rec), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta, polls = load(rec)
    meta["replayed_from"] = str(rec)
    (out / "run.json").write_text(json.dumps(meta, indent=1))
    tmp = out / ".status.json"
    with (out / "polls.jsonl").open("w") as f:
        for p in polls:
            if p["state"] != "running":
                continue
            st = live.status(config, driver={"jobs": [], "errors": [], "replay": True}, now=p["updated_at"], state="running")
            tmp.write_text(json.dumps(st))
            r = _reading(tmp, p["t"])
            r["live_eta_s"] = p["eta_s"]  # what the page showed then
            f.write(json.dumps(r) + "\n")
    tmp.unlink()


def load(folder: Path) -> tuple[dict, list[dict]]:
    meta = json.loads((folder / "run.json").read_text())
    polls = [json.loads(line) for line in (folder / "polls.jsonl").read_text().splitlines() if line.strip()]
    return meta, polls


def errors(meta: dict, polls: list[dict]) -> list[dict]:
    """At each fraction: the reading, its ETA, the true time left (optimization, whole run)."""
    running = [p for p in polls if p["state"] == "running"]
    opt_end = next((p["updated_at"] for p in polls if p["remaining"] == 0), None)
    rows = []
    for f in FRACTIONS:
        p = next((p for p in running if p["total"] and p["done"] / p["total"] >= f), None)
        if p is None:
            continue
        rows.append({"fraction": f, "at_s": round(p["updated_at"] - meta["start"], 1),
                     "done": p["done"], "total": p["total"], "eta_s": p["eta_s"],
                     "true_opt_s": None if opt_end is None else round(opt_end - p["updated_at"], 1),
                     "true_run_s": round(meta["end"] - p["updated_at"], 1)})
    for r in rows:
        r["error_opt_s"] = (None if r["eta_s"] is None or r["true_opt_s"] is None
                            else round(r["eta_s"] - r["true_opt_s"], 1))
        r["error_opt_pct"] = (None if r["error_opt_s"] is None or not r["true_opt_s"]
                              else round(100 * r["error_opt_s"] / r["true_opt_s"], 1))
    return rows


def _m(seconds: float | None) -> str:
    """m:ss"""
    if seconds is None:
        return "–"
    sign, seconds = ("-" if seconds < 0 else ""), round(abs(seconds))
    return f"{sign}{seconds // 60}:{seconds % 60:02d}"


def table(args) -> None:
    lines = ["| run | at | elapsed | done / total | ETA shown | left, optimization | error | left, whole run |",
             "|---|---|---|---|---|---|---|---|"]
    summary = {}
    for folder in map(Path, args.folders):
        meta, polls = load(folder)
        rows = errors(meta, polls)
        summary[folder.name] = {"rows": rows, "run_s": round(meta["end"] - meta["start"], 1),
                                "loadavg_1min_mean": meta.get("loadavg_1min_mean"),
                                "loadavg_1min_max": meta.get("loadavg_1min_max"), "polls": len(polls)}
        for r in rows:
            err = "–" if r["error_opt_s"] is None else f"{'+' if r['error_opt_s'] >= 0 else ''}{_m(r['error_opt_s'])} ({r['error_opt_pct']:+.0f} %)"
            lines.append(f"| {folder.name} | {r['fraction']:.0%} | {_m(r['at_s'])} | {r['done']:.1f} / {r['total']:.0f} "
                         f"| {_m(r['eta_s'])} | {_m(r['true_opt_s'])} | {err} | {_m(r['true_run_s'])} |")
    text = "\n".join(lines)
    print(text)
    if args.write:
        Path(args.write).with_suffix(".md").write_text(text + "\n")
        Path(args.write).with_suffix(".json").write_text(json.dumps(summary, indent=1) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    rec = sub.add_parser("record")
    rec.add_argument("--status", required=True, help="the run's live/status.json")
    rec.add_argument("--out", required=True)
    rec.add_argument("--every", type=float, default=3.0)
    rec.add_argument("command", nargs=argparse.REMAINDER)
    tab = sub.add_parser("table")
    tab.add_argument("folders", nargs="+")
    tab.add_argument("--write", help="also write PATH.md and PATH.json")
    rep = sub.add_parser("replay")
    rep.add_argument("--rec", required=True)
    rep.add_argument("--out", required=True)
    rep.add_argument("--configfile", action="append", default=[])
    rep.add_argument("--config", nargs="*", default=[])
    args = parser.parse_args(argv)
    if args.cmd == "replay":
        replay(args)
        return
    if args.cmd == "record":
        if args.command and args.command[0] == "--":
            args.command = args.command[1:]
        record(args)
    else:
        table(args)


if __name__ == "__main__":
    main()
