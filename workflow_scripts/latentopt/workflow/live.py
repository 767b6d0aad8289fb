"""The live status of a run or study (torch-free, driver side): one JSON file and one
self-refreshing static HTML page under the results folder, rewritten while the run runs by the
logger plugin ``snakemake-logger-plugin-latentopt`` (``--logger latentopt``) and at its start and
end by the Snakefile's hooks; ``make progress`` prints the same status.

Everything is read from disk, where every job writes it, locally or on a SLURM node (the results
folder is on a shared file system there): the per-image records (done, failed with their reasons,
latest gains), the optimization job logs (the running batch's step, attempts), the driver lock of
the results folder (a driver holds it while the run runs: without one the run is "stopped", or
"finished" when nothing is left, and shows no ETA). The throughput and ETA are those of
:func:`latentopt.workflow.progress.progress` (one implementation). The driver adds what only it
knows: the jobs it has submitted and not seen end (any rule), and the jobs that failed with
Snakemake's message.
"""

from __future__ import annotations

import html as _html
import json
import os
import re
import socket
import sys
import time
from pathlib import Path

from latentopt.workflow import driverlock, layout, thumbnails
from latentopt.workflow.plan import build_plan, parse_optimize_rule
from latentopt.workflow.progress import optimize_logs, progress, read_log
from latentopt.workflow.study import is_study, model_configs

REFRESH_S = 10         # the page reloads itself this often (a headless browser reading it for 5 s sees one load)
LATEST = 8             # finished images listed with their gain
THUMBS = 4             # of which the newest are shown as thumbnails (original and reconstruction)
ATTEMPT_RE = re.compile(r"^===== attempt (\d+): ")


def driver_state(results: str | Path, remaining: int) -> str:
    """'running' while a live driver holds the results folder's lock (this process or another),
    else 'finished' (nothing left) or 'stopped'."""
    lock = Path(results) / driverlock.LOCK_NAME
    found = driverlock._read(lock) if lock.exists() else None
    if found is not None and driverlock.stale_reason(found[0], found[1]) is None:
        return "running"
    return "finished" if remaining == 0 else "stopped"


def _records(results: str | Path, plan, now: float) -> tuple[list[dict], list[dict]]:
    """(failed images with their reasons, the latest finished optimized images with their PSNR
    gain), as written by ``now``."""
    failed, finished = [], []
    for arm in plan.arms:
        for split, entries in plan.splits.items():
            for e in entries:
                try:
                    r = json.loads(layout.per_image(results, arm, split, e.image_id, "json").read_text())
                except (OSError, ValueError):
                    continue
                if (r.get("finished_at") or 0.0) > now:
                    continue
                if r.get("status") != "ok":
                    failed.append({"arm": arm, "split": split, "image": e.image_id,
                                   "reason": r.get("reason") or r.get("failure_kind") or r.get("status")})
                elif arm != layout.BASELINE:
                    ini, fin = (r.get("initial") or {}).get("psnr"), (r.get("final") or {}).get("psnr")
                    finished.append({"arm": arm, "split": split, "image": e.image_id,
                                     "finished_at": r.get("finished_at") or 0.0,
                                     "psnr_gain_db": (fin - ini) if ini is not None and fin is not None else None})
    finished.sort(key=lambda r: r["finished_at"], reverse=True)
    return failed, finished[:LATEST]


def _running_batches(results: str | Path, plan, now: float) -> tuple[list[dict], int]:
    """The optimization jobs whose log shows a batch being optimized (arm, job, step, images) and
    the number of job attempts beyond the first (retries)."""
    chunks = {c.name: c for c in plan.chunks}
    running, retries = [], 0
    for arm in plan.arms:
        for path in optimize_logs(results, arm):
            try:
                text = path.read_text(errors="replace")
            except OSError:
                continue
            attempts = [int(m.group(1)) for m in map(ATTEMPT_RE.match, text.splitlines()) if m]
            retries += max(max(attempts, default=1) - 1, 0)
            state = read_log(text, now)
            if state.running is None:
                continue
            chunk = chunks.get(path.stem)
            todo = [i for i in (chunk.image_ids if chunk else [])
                    if not layout.per_image(results, arm, chunk.split, i, "json").exists()]
            batch = state.running
            running.append({"arm": arm, "job": path.stem, "attempt": max(attempts, default=1),
                            "images": todo[:batch.n], "retry": bool(batch.retry_n),
                            "step_fraction": round(batch.retry_fraction if batch.retry_n else batch.fraction, 3)})
    return running, retries


def model_status(config: dict, now: float, window_s: float = 600.0) -> dict:
    """One model's (one run's) status."""
    results = config["results_dir"]
    plan = build_plan(config)
    arms = progress(config, window_s=window_s, now=now)
    failed, latest = _records(results, plan, now)
    running, retries = _running_batches(results, plan, now)
    return {"results": str(Path(results).absolute()), "arms": arms, "running": running, "retries": retries,
            "failed": failed, "latest": latest}


def status(config: dict, driver: dict | None = None, now: float | None = None, window_s: float = 600.0,
           state: str | None = None) -> dict:
    """The status of a run or study: per model (a run: one, named ''), its arms' progress, its
    running batches and failures; the state of the driver; the run's (a study: study-wide) ETA.
    ``driver``: what the driver knows (``jobs``: running jobs, ``errors``: failed jobs).
    ``now`` and ``state``: a replay, the run as it stood at ``now`` in that state."""
    now = time.time() if now is None else now
    configs = model_configs(config) if is_study(config) else {"": config}
    models = {m: model_status(sub, now, window_s) for m, sub in configs.items()}
    remaining = sum(s["arms"]["all"]["remaining"] for s in models.values())
    state = state or driver_state(config["results_dir"], remaining)
    eta = _eta([s["arms"]["all"] for s in models.values()]) if remaining else 0.0
    if state != "running":
        eta = None if remaining else 0.0
        for s in models.values():  # a stopped run runs nothing, whatever its logs say
            s["running"] = []
            for row in s["arms"].values():
                row["running"], row["eta_s"] = 0, (None if row["remaining"] else 0.0)
    return {
        "format": "latentopt-live/1", "experiment_id": config.get("experiment_id"),
        "results": str(Path(config["results_dir"]).absolute()), "state": state, "updated_at": now,
        "host": socket.gethostname(), "remaining": remaining, "eta_s": eta, "models": models,
        "driver": driver or {"jobs": [], "errors": [], "note": "no logger plugin in this driver "
                                                                "(start the run with --logger latentopt for live updates)"},
    }


def _eta(rows: list[dict]) -> float | None:
    """The ETA of the run (one model) or the study (the models share the machine or the
    cluster): every model's job-seconds left (:func:`latentopt.workflow.progress.progress`, each
    arm's images at that arm's cost) over the parallelism all the models' jobs had together; a
    model with nothing measured yet costs, per image left, what the measured models cost."""
    if len(rows) == 1:
        return rows[0]["eta_s"]
    left = [max(r["total"] - r["ok"] - r["failed"] - r["partial"], 0.0) for r in rows]
    known = [(w, n) for w, n in zip((r["work_left_s"] for r in rows), left) if w is not None]
    if not known:
        return None
    per_image = sum(w for w, _ in known) / max(sum(n for _, n in known), 1e-9)
    work = sum(per_image * n if r["work_left_s"] is None else r["work_left_s"] for r, n in zip(rows, left))
    wall = max(r["wall_s"] for r in rows)
    parallel = sum(r["job_s"] for r in rows) / wall if wall >= 1 else 0.0
    return work / parallel if parallel > 0 else None


def _hms(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _gain(db: float | None) -> str:
    return "–" if db is None else f"{db:+.2f} dB"


def format_text(st: dict) -> str:
    """The status as the terminal table of ``make progress``."""
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(st["updated_at"]))
    lines = [f"{st['experiment_id']}: {st['state'].upper()} at {when}; {st['remaining']} image(s) left"
             + (f", ETA {_hms(st['eta_s'])}" if st["state"] == "running" else "")
             + (" (study-wide)" if len(st["models"]) > 1 else "")]
    for model, s in st["models"].items():
        rows = s["arms"]
        width = max([12, *(len(a) + 2 for a in rows)])
        if model:
            lines.append(f"== {model} ==")
        lines.append(f"{'arm':<{width}}{'done':>6}{'failed':>8}{'left':>6}{'running':>9}{'img/min':>9}{'ETA':>10}")
        for arm, r in rows.items():
            lines.append(f"{arm:<{width}}{r['ok']:>6}{r['failed']:>8}{r['remaining']:>6}{r['running']:>9}"
                         f"{r['images_per_min']:>9.2f}{_hms(r['eta_s']):>10}")
        for job in s["running"]:
            lines.append(f"  running {job['arm']}/{job['job']}: {', '.join(job['images']) or '?'} "
                         f"step {job['step_fraction']:.0%}{' (retry)' if job['retry'] else ''}")
        for f in s["failed"]:
            lines.append(f"  failed {f['arm']}/{f['split']}/{f['image']}: {f['reason']}")
    return "\n".join(lines)


def _thumbs_html(results: str, latest: list[dict], page_dir: Path) -> str:
    """The newest finished reconstructions as thumbnails beside their original, with their gain:
    the reconstruction read from its per-image ``.pt`` (embedded, the arm's PNGs come later), the
    original by its path relative to the page (the page stays small)."""
    e = _html.escape
    figures = []
    for r in latest:
        recon = thumbnails.thumbnail_uri(layout.per_image(results, r["arm"], r["split"], r["image"], "pt"))
        if recon is None:
            continue
        original = Path(os.path.relpath(layout.original_png(results, r["split"], r["image"]), page_dir)).as_posix()
        name = f"{r['arm']}/{r['split']}/{r['image']}"
        figures.append(
            f"<figure class='thumb' data-image='{e(name)}'><img class='original' src='{e(original)}' alt='original' "
            f"title='original'><img class='recon' src='{recon}' alt='{e(r['arm'])} reconstruction' "
            f"title='{e(r['arm'])} reconstruction'>"
            f"<figcaption>{e(name)}<br><b>{_gain(r['psnr_gain_db'])}</b> PSNR</figcaption></figure>")
    return f"<div id='thumbs'>{''.join(figures)}</div>" if figures else ""


def render_page(st: dict) -> str:
    """The status as a static HTML page that reloads itself while the run runs."""
    e = _html.escape
    refresh = f'<meta http-equiv="refresh" content="{REFRESH_S}">' if st["state"] == "running" else ""
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(st["updated_at"]))
    parts = [f"<h1>{e(str(st['experiment_id']))}: <span id='state' class='{e(st['state'])}'>{e(st['state'])}</span></h1>",
             f"<p id='summary'>updated {e(when)} on {e(st['host'])} · {st['remaining']} image(s) left · "
             f"ETA <b id='eta'>{_hms(st['eta_s']) if st['state'] == 'running' else '–'}</b>"
             f"{' (study-wide)' if len(st['models']) > 1 else ''} · results {e(st['results'])}</p>"]
    for model, s in st["models"].items():
        if model:
            parts.append(f"<h2>{e(model)}</h2>")
        rows = "".join(
            f"<tr><td>{e(arm)}</td><td><progress max='{r['total']}' value='{r['ok'] + r['failed'] + r['partial']:.2f}'></progress></td>"
            f"<td class='n'>{r['ok'] + r['failed']}/{r['total']}</td><td class='n'>{r['failed']}</td><td class='n'>{r['running']}</td>"
            f"<td class='n'>{r['images_per_min']:.2f}</td><td class='n'>{_hms(r['eta_s'])}</td></tr>"
            for arm, r in s["arms"].items())
        parts.append("<table class='arms'><tr><th>arm</th><th></th><th>images done</th><th>failed</th><th>running</th>"
                     f"<th>img/min</th><th>ETA</th></tr>{rows}</table>")
        if s["running"]:
            parts.append("<h3>Running</h3><ul>" + "".join(
                f"<li>{e(j['arm'])} / {e(j['job'])} (attempt {j['attempt']}): {e(', '.join(j['images']) or '?')} — step "
                f"{j['step_fraction']:.0%}{' (non-convergence retry)' if j['retry'] else ''}</li>" for j in s["running"]) + "</ul>")
        if s["failed"] or s["retries"]:
            parts.append(f"<h3>Failures</h3><p>{s['retries']} job retr{'y' if s['retries'] == 1 else 'ies'}</p><ul>" + "".join(
                f"<li>{e(f['arm'])}/{e(f['split'])}/{e(f['image'])}: {e(str(f['reason']))}</li>" for f in s["failed"]) + "</ul>")
        if s["latest"]:
            parts.append("<h3>Latest finished</h3>" + _thumbs_html(s["results"], s["latest"][:THUMBS],
                                                                layout.live_page_file(st["results"]).parent) + "<ul>" + "".join(
                f"<li>{e(r['arm'])}/{e(r['split'])}/{e(r['image'])}: PSNR gain {_gain(r['psnr_gain_db'])}</li>"
                for r in s["latest"]) + "</ul>")
    driver = st["driver"]
    if driver.get("jobs"):
        parts.append("<h3>Jobs submitted by the driver</h3><ul>" + "".join(
            f"<li>{e(j['rule'])} {e(j.get('wildcards') or '')} — {_hms(st['updated_at'] - j['started_at'])}</li>"
            for j in driver["jobs"]) + "</ul>")
    if driver.get("errors"):
        parts.append("<h3>Failed jobs</h3><ul>" + "".join(
            f"<li>{e(j['rule'])}: {e(j.get('message') or '')} (log {e(', '.join(j.get('log') or []))})</li>"
            for j in driver["errors"]) + "</ul>")
    if driver.get("note"):
        parts.append(f"<p class='note'>{e(driver['note'])}</p>")
    payload = json.dumps(st).replace("</", "<\\/")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">{refresh}<title>{e(str(st['experiment_id']))} · {e(st['state'])}</title>
<style>body{{font-family:system-ui,sans-serif;margin:1em 2em;color:#1b1b1b}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 8px}} td.n{{text-align:right;font-variant-numeric:tabular-nums}}
progress{{width:14em}} figure.thumb{{display:inline-block;margin:0 1em 0.5em 0;font-size:85%}}
figure.thumb img{{display:inline-block;vertical-align:top;margin-right:2px;height:96px;width:auto;max-width:192px}} .running{{color:#17603a}} .stopped{{color:#a31515}} .finished{{color:#2a6fdb}} .note{{color:#666}}</style>
</head><body>
{chr(10).join(parts)}
<p id="stale" class="stopped"></p>
<script type="application/json" id="status">{payload}</script>
<script>
// a driver killed outright cannot say so: a running page that stopped being rewritten says its age
const st = JSON.parse(document.getElementById("status").textContent);
const age = Date.now() / 1000 - st.updated_at;
if (st.state === "running" && !st.driver.replay && age > 120) document.getElementById("stale").textContent =
  "Not rewritten for " + Math.round(age / 60) + " min: the driver may have stopped (make progress tells).";
</script>
</body></html>
"""


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)  # a reader never sees half a file


def write_status(config: dict, driver: dict | None = None, now: float | None = None) -> dict:
    """Compute the status and write its JSON and page under the results folder; returns it."""
    st = status(config, driver, now)
    results = config["results_dir"]
    _write(layout.live_status_file(results), json.dumps(st, indent=1))
    _write(layout.live_page_file(results), render_page(st))
    return st


# The run this driver process runs (set by the Snakefile's onstart; read by the logger plugin,
# which lives in the same process).
CURRENT: dict | None = None


def start(config: dict) -> None:
    """Called by the Snakefile when the run starts (not in dry runs): register the run for the
    logger plugin and write the first status."""
    global CURRENT
    CURRENT = config
    _safely(write_status, config)


LAST_DRIVER: dict | None = None


def refresh(driver: dict | None = None) -> dict | None:
    """The logger plugin's tick: rewrite the status of the registered run (None before one is)."""
    global LAST_DRIVER
    if CURRENT is None:
        return None
    LAST_DRIVER = driver
    return write_status(CURRENT, driver)


def finish(config: dict) -> None:
    """Called by the Snakefile when the run ends (after the driver lock is released): the last
    status, 'finished' or 'stopped', with the failed jobs the plugin saw."""
    driver = dict(LAST_DRIVER or {"errors": []}, jobs=[], note="the driver has ended")
    _safely(write_status, config, driver)


def _safely(write, *args) -> None:
    """The status page must never stop or fail a run: a write that fails is reported, once per call."""
    try:
        write(*args)
    except Exception as exc:  # noqa: BLE001 - any failure of the page is only reported
        print(f"latentopt: live status not written: {type(exc).__name__}: {exc}", file=sys.stderr)
