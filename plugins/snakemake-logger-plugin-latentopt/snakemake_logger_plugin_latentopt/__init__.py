"""Snakemake logger plugin ``latentopt``: keeps the live status of a latentopt run up to date.

The status itself is computed by the workflow's own ``latentopt.workflow.live`` (imported by the
Snakefile into this driver process, which registers its run there at ``onstart``); this handler
only tells it what the driver knows (jobs submitted and not yet ended, failed jobs) and when to
rewrite the files: on every job event and every ``interval`` seconds, from a thread of its own.
"""


import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Optional

from snakemake_interface_logger_plugins.base import LogHandlerBase
from snakemake_interface_logger_plugins.common import LogEvent
from snakemake_interface_logger_plugins.settings import LogHandlerSettingsBase

LIVE_MODULE = "latentopt.workflow.live"


@dataclass
class LogHandlerSettings(LogHandlerSettingsBase):
    interval: Optional[float] = field(
        default=10.0,
        metadata={"help": "Seconds between two rewrites of the live status (besides every job event; default 10)."},
    )


class LogHandler(LogHandlerBase):
    def __post_init__(self) -> None:
        self.jobs = {}         # jobid -> what JOB_INFO said about it
        self.running = {}     # jobid -> when the driver started it
        self.errors = []
        self.state_lock = threading.Lock()  # not self.lock: logging.Handler holds that one around emit
        self.last_write = 0.0
        self.failed_writes = 0
        self.stop = threading.Event()
        self.thread = None
        if not self.common_settings.dryrun:  # a dry run changes nothing on disk
            self.thread = threading.Thread(target=self._tick, name="latentopt-live", daemon=True)
            self.thread.start()

    def _interval(self) -> float:
        value = getattr(self.settings, "interval", None)
        return float(value) if value else 10.0

    def emit(self, record) -> None:
        event = getattr(record, "event", None)
        now = time.time()
        with self.state_lock:
            if event == LogEvent.JOB_INFO:
                self.jobs[record.jobid] = {"rule": record.rule_name, "wildcards": dict(getattr(record, "wildcards", {}) or {}),
                                           "log": list(getattr(record, "log", []) or [])}
            elif event == LogEvent.JOB_STARTED:
                for jobid in getattr(record, "jobs", []) or []:
                    self.running[jobid] = now
            elif event == LogEvent.JOB_FINISHED:
                self.running.pop(getattr(record, "job_id", None), None)
            elif event == LogEvent.JOB_ERROR:
                jobid = getattr(record, "jobid", None)
                self.running.pop(jobid, None)
                self.errors.append({"rule": getattr(record, "rule_name", "?"), "jobid": jobid, "at": now,
                                    "message": getattr(record, "rule_msg", None) or record.getMessage(),
                                    "log": list(getattr(record, "log", []) or [])})
            else:
                return
        self._write(min_gap=1.0)

    def snapshot(self) -> dict:
        with self.state_lock:
            jobs = [{"jobid": j, "started_at": t, **self.jobs.get(j, {"rule": "?"})} for j, t in sorted(self.running.items())]
            for j in jobs:
                j["wildcards"] = ", ".join(f"{k}={v}" for k, v in (j.get("wildcards") or {}).items())
            return {"jobs": jobs, "errors": list(self.errors), "plugin": "snakemake-logger-plugin-latentopt"}

    def _write(self, min_gap: float = 0.0) -> None:
        live = sys.modules.get(LIVE_MODULE)  # the workflow imported it; before that there is no run
        if self.common_settings.dryrun or live is None or time.time() - self.last_write < min_gap:
            return
        self.last_write = time.time()
        try:
            live.refresh(self.snapshot())
        except Exception as exc:  # the page must never stop the run
            self.failed_writes += 1
            if self.failed_writes <= 3:
                print(f"latentopt live status not written: {type(exc).__name__}: {exc}", file=sys.stderr)

    def _tick(self) -> None:
        while not self.stop.wait(self._interval()):
            self._write()

    def close(self) -> None:
        self.stop.set()
        super().close()

    @property
    def writes_to_stream(self) -> bool:
        return False  # Snakemake keeps its own terminal output

    @property
    def writes_to_file(self) -> bool:
        return False  # no log file of its own (Snakemake would expect a baseFilename)

    @property
    def has_filter(self) -> bool:
        return True  # every record reaches emit, which picks the job events

    @property
    def has_formatter(self) -> bool:
        return True

    @property
    def needs_rulegraph(self) -> bool:
        return False
