"""Progress of a run, while it runs or afterwards: images done/failed/remaining per arm,
throughput and ETA, from the per-image records and the optimization job logs on disk
(independent of Snakemake).

    python -m latentopt.workflow.progress [--configfile demo/config.yaml] [--config key=value ...] [--watch 10]

(a study, config key ``models``: one table per model).

(run from the repository root with PYTHONPATH=workflow_scripts, or `make progress`).

What counts as done is measured in images, fractions included: a finished image (its record)
counts 1; an image in a batch that is still running counts the fraction of its iterations done,
read from the job log's last progress line (``[4 img] step 20/50``, written every 10 steps by the
optimization job in the format of latentopt.core.progress_line). A batch in its non-convergence retry counts the retried images at the
retry's own fraction (``retry step 30/100``), the others as done. Throughput is what was done
over the last ``window_s`` seconds per minute that some job of the arm was running in them (the
attempts in its job logs: from the process start, i.e. header line minus the interpreter and
import time the end line reports, to the end line, or to now while running), so a young run is
not diluted by a window it was not running in, nor an arm by the time it waited for others (when
nothing moved in the window: over all its running time so far); the ETA is what is left at that rate (an upper bound where early stopping ends images sooner). The
row ``all`` is every arm together, over the wall time since the first job that ran in the window
(gaps between jobs included): the run's ETA for its optimization jobs.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from latentopt.core import progress_line
from latentopt.workflow import layout
from latentopt.workflow.config import load_config
from latentopt.workflow.plan import build_plan

STAMP = r"(?P<t>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)"
HEADER_RE = re.compile(r"^===== attempt \d+: " + STAMP)
# the progress line an optimization job writes (latentopt.core.progress_line), after the stamp
PROGRESS_RE = re.compile(r"^" + STAMP + r" +" + progress_line.PATTERN)
DONE_RE = re.compile(r"^" + STAMP + r" (\[\d+/\d+\] \S+: |\S+: finished earlier in an interrupted run)")
END_RE = re.compile(r"^" + STAMP + r" (wall-time split: |.*: interrupted at )")
# the start-up before the attempt's header (interpreter, imports), from its wall-time split line
BEFORE_HEADER_RE = re.compile(r"\b(python_start|imports|python_start_and_imports) (\d+(?:\.\d+)?) s")


def _seconds(stamp: str) -> float:
    return time.mktime(time.strptime(stamp, "%Y-%m-%d %H:%M:%S"))


def optimize_logs(results: str | Path, arm: str) -> list[Path]:
    """The job logs of one arm's optimization jobs (rules/optimize.smk: logs/optimize/<arm>/<chunk>.log)."""
    return sorted((layout.log_dir(results, "optimize") / arm).glob("*.log"))


@dataclass
class _Batch:
    n: int
    fraction: float = 0.0  # of the first attempt
    retry_n: int = 0
    retry_fraction: float = 0.0

    def credit(self) -> float:
        """Images done, fractions included."""
        if self.retry_n:
            return (self.n - self.retry_n) + self.retry_n * self.retry_fraction
        return self.n * self.fraction


@dataclass
class LogState:
    """One job log read up to a time: the batch running then (if any) and when the job's attempts
    ran (``busy``: (start, end) per attempt; the last one, not ended, runs until the time read)."""

    running: _Batch | None = None
    busy: list[tuple[float, float]] = field(default_factory=list)
    ended: bool = True


def read_log(text: str, until: float) -> LogState:
    """The state of a job log at time ``until`` (lines stamped later are ignored): the batch of the
    last attempt still running (no result line, no end line after its progress lines)."""
    state = LogState()
    start = last = None
    before: list[float] = []  # start-up seconds before the header, of the attempts that ended

    def close(lead: float | None = None):
        if start is not None:
            if lead is None:  # still running: the start-up of the ended attempts, else none known
                lead = sorted(before)[len(before) // 2] if before else 0.0
            state.busy.append((start - lead, last))

    for line in text.splitlines():
        m = HEADER_RE.match(line) or PROGRESS_RE.match(line) or DONE_RE.match(line) or END_RE.match(line)
        if not m:
            continue
        t = _seconds(m["t"])
        if t > until:
            break
        if HEADER_RE.match(line):  # a new attempt: whatever ran before died with the old one
            if not state.ended:
                close()
            state.running, state.ended, start = None, False, t
        last = t
        if HEADER_RE.match(line):
            continue
        elif (p := PROGRESS_RE.match(line)) is not None:
            n, step, total = int(p["n"]), int(p["step"]), max(int(p["total"]), 1)
            frac = min(step / total, 1.0)
            if p["retry"]:
                if state.running is None:
                    state.running = _Batch(n=n, fraction=1.0)
                state.running.retry_n, state.running.retry_fraction = min(n, state.running.n), frac
            elif state.running is None or state.running.retry_n or n != state.running.n or frac < state.running.fraction:
                state.running = _Batch(n=n, fraction=frac)  # a new batch
            else:
                state.running.fraction = frac
        else:  # a result line (the batch's records are written) or the job's end
            state.running = None
            if END_RE.match(line) and not state.ended:
                lead = sum(float(v) for _, v in BEFORE_HEADER_RE.findall(line)) if "wall-time split" in line else None
                if lead is not None:
                    before.append(lead)
                close(lead)
                state.ended, start = True, None
    if not state.ended:  # still running at ``until``
        last = until
        close()
    return state


def busy_seconds(intervals: list[tuple[float, float]], since: float, until: float) -> float:
    """Length of the union of ``intervals`` within [since, until]."""
    total, reach = 0.0, since
    for a, b in sorted((max(a, since), min(b, until)) for a, b in intervals):
        if b > reach:
            total += b - max(a, reach)
            reach = b
    return total


def _records(config: dict, plan, arm: str, until: float) -> tuple[list[float], int, int]:
    """Finish times of the arm's records written by ``until``, and the ok/failed counts."""
    results, times, ok, failed = config["results_dir"], [], 0, 0
    for split, entries in plan.splits.items():
        for e in entries:
            path = layout.per_image(results, arm, split, e.image_id, "json")
            try:
                record = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            t = record.get("finished_at") or 0.0
            if t > until:
                continue
            times.append(t)
            ok += record.get("status") == "ok"
            failed += record.get("status") != "ok"
    return times, ok, failed


def progress(config: dict, window_s: float = 600.0, now: float | None = None) -> dict:
    """Per arm and for ``all``: total, ok, failed, remaining (images), running (batches being
    optimized, from the job logs), in_progress_batches (checkpointed batches), partial (images'
    worth done in running batches), images_per_min and eta_s (None when unknown). ``now``: read
    the logs and records as they stood then (a progress reading after the fact)."""
    now = time.time() if now is None else now
    plan = build_plan(config)
    results = config["results_dir"]
    out, spans = {}, []
    for arm in plan.arms:
        times, ok, failed = _records(config, plan, arm, now)
        logs = []
        for path in optimize_logs(results, arm):
            try:
                logs.append(path.read_text(errors="replace"))
            except OSError:
                continue
        states = [read_log(text, now) for text in logs]
        partial = sum(s.running.credit() for s in states if s.running)
        # the rate: work done in the window per second some job of this arm was running in it
        then = now - window_s
        done_then = sum(1 for t in times if t <= then) + sum(
            s.running.credit() for s in (read_log(text, then) for text in logs) if s.running)
        done_now = ok + failed + partial
        intervals = [iv for st in states for iv in st.busy]
        rate = _rate(done_now - done_then, busy_seconds(intervals, then, now), done_now, intervals, now)
        total = plan.n_images
        remaining = total - ok - failed
        left = max(total - done_now, 0.0)
        out[arm] = {
            "total": total, "ok": ok, "failed": failed, "remaining": remaining,
            "running": sum(1 for s in states if s.running), "partial": round(partial, 3),
            "in_progress_batches": sum(len(list(layout.checkpoint_dir(results, arm, split).glob("batch-*.pt")))
                                       for split in plan.splits),
            "images_per_min": rate,
            "eta_s": (left / rate * 60) if rate > 0 and remaining else (0.0 if not remaining else None),
        }
        spans.append((done_then, done_now, intervals))
    out["all"] = _overall(out, spans, now - window_s, now)
    out["all"].update(_work_left(plan.arms, out, spans, now - window_s, now))
    return out


def job_seconds(intervals: list[tuple[float, float]], since: float, until: float) -> float:
    """Sum of the lengths of ``intervals`` within [since, until]: two jobs running side by side
    count twice (unlike :func:`busy_seconds`)."""
    return sum(max(min(b, until) - max(a, since), 0.0) for a, b in intervals)


def _work_left(arms: list[str], out: dict, spans: list, then: float, now: float) -> dict:
    """What is left in job-seconds and the run's ETA from it (the ``all`` row's ``eta_s``).

    Each arm's images cost what that arm's jobs took per image (job-seconds, start-up included,
    over the window, else over all its attempts): a cheap plain decode does not make the
    optimized images look cheap. An arm with nothing measured yet (its jobs not started) costs
    the mean of the measured optimized arms (else of every measured arm). The job-seconds left,
    over the parallelism the run had in the window (job-seconds per second of wall time since the
    first job that ran in it: the gaps between jobs are the run's time too), is the ETA."""
    cost, left = {}, {}
    for arm, (done_then, done_now, intervals) in zip(arms, spans):
        left[arm] = max(out[arm]["total"] - done_now, 0.0)
        moved, busy = done_now - done_then, job_seconds(intervals, then, now)
        if moved > 0 and busy >= 1:
            cost[arm] = busy / moved
        elif done_now > 0 and (ever := job_seconds(intervals, float("-inf"), now)) >= 1:
            cost[arm] = ever / done_now
    optimized = [c for a, c in cost.items() if a != layout.BASELINE]
    fallback = sum(optimized) / len(optimized) if optimized else (max(cost.values()) if cost else None)
    work = None if fallback is None else sum(n * cost.get(a, fallback) for a, n in left.items())
    intervals = [iv for _, _, ivs in spans for iv in ivs]
    active = [a for a, b in intervals if b >= then]
    wall = now - max(then, min(active)) if active else 0.0
    busy = job_seconds(intervals, then, now)
    if wall < 1 or busy < 1:  # nothing ran in the window: the whole history
        first = min((a for a, _ in intervals), default=now)
        wall, busy = now - first, job_seconds(intervals, float("-inf"), now)
    parallel = busy / wall if wall >= 1 and busy >= 1 else None
    remaining = out["all"]["remaining"] if "all" in out else sum(out[a]["remaining"] for a in arms)
    eta = 0.0 if not remaining else (work / parallel if work is not None and parallel else None)
    return {"work_left_s": None if work is None else round(work, 1), "job_s": round(busy, 1), "wall_s": round(wall, 1),
            "eta_s": eta}


def _rate(moved: float, busy: float, done: float, intervals: list, now: float) -> float:
    """Images per minute of running time: over the window, or, when nothing moved in it (a job
    still starting up, a long first batch), over every attempt so far."""
    if moved > 0 and busy >= 1:
        return moved / (busy / 60)
    ever = busy_seconds(intervals, float("-inf"), now)
    return done / (ever / 60) if done > 0 and ever >= 1 else 0.0


def _overall(out: dict, spans: list, then: float, now: float) -> dict:
    """Every arm together: what all arms did in the window per minute of wall time since the
    first job that ran in it; the ETA of everything left at that rate."""
    keys = ("total", "ok", "failed", "remaining", "running", "in_progress_batches")
    row = {k: sum(r[k] for r in out.values()) for k in keys}
    row["partial"] = round(sum(r["partial"] for r in out.values()), 3)
    intervals = [iv for _, _, ivs in spans for iv in ivs]
    moved = sum(max(now_done - then_done, 0.0) for then_done, now_done, _ in spans)
    # wall time from the first job running in the window: the gaps between jobs (gate checks,
    # scheduling) are part of the run's time
    active = [a for a, b in intervals if b >= then]
    wall = now - max(then, min(active)) if active else 0.0
    rate = _rate(moved, wall, sum(d for _, d, _ in spans), [(min(active), now)] if active else intervals, now)
    left = max(row["total"] - sum(now_done for _, now_done, _ in spans), 0.0)
    row["images_per_min"] = rate
    row["eta_s"] = (left / rate * 60) if rate > 0 and row["remaining"] else (0.0 if not row["remaining"] else None)
    return row


def format_table(status: dict) -> str:
    width = max([12, *(len(arm) + 2 for arm in status)])  # a sweep's arm names are long (psnr-lr0.02-it25)
    lines = [f"{'arm':<{width}}{'done':>6}{'failed':>8}{'left':>6}{'running':>9}{'img/min':>9}{'ETA':>10}"]
    for arm, s in status.items():
        eta = "-" if s["eta_s"] is None else time.strftime("%H:%M:%S", time.gmtime(s["eta_s"]))
        lines.append(f"{arm:<{width}}{s['ok']:>6}{s['failed']:>8}{s['remaining']:>6}{s['running']:>9}"
                     f"{s['images_per_min']:>9.2f}{eta:>10}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configfile", action="append", default=[])
    parser.add_argument("--config", nargs="*", default=[], help="key=value overrides (dotted keys)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--watch", type=float, default=0, help="refresh every N seconds")
    parser.add_argument("--window", type=float, default=600.0, help="throughput over the last N seconds (default 600)")
    args = parser.parse_args(argv)
    from latentopt.workflow import live  # the live status (which builds on this module)

    overrides = {k: yaml.safe_load(v) for k, _, v in (item.partition("=") for item in args.config)}
    config = load_config(args.configfile, overrides)
    while True:  # the status the live page shows (latentopt.workflow.live), not a second reading
        st = live.status(config, driver=_driver_of(config), window_s=args.window)
        print(json.dumps(st, indent=1) if args.json else live.format_text(st), flush=True)
        if not args.watch or st["state"] != "running":
            break
        time.sleep(args.watch)
        print()


def _driver_of(config: dict) -> dict | None:
    """What the running driver's logger plugin last wrote (its jobs and failed jobs), if any."""
    try:
        return json.loads(layout.live_status_file(config["results_dir"]).read_text())["driver"]
    except (OSError, ValueError, KeyError):
        return None


if __name__ == "__main__":
    main()
