"""What the user sees of a running batch: progress lines in the job log
(:mod:`latentopt.core.progress_line`) and, on Ctrl-C, one line saying where the batch stopped and
what a rerun resumes from."""

from __future__ import annotations

import contextlib
import time

from latentopt.core.progress_line import progress_line


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) during a job; its message is the one line the user sees
    (:func:`latentopt.core.joblog.job_log` prints it instead of a traceback)."""


def progress_logger(log, total: int, ids: list[str], every: int = 10, where: dict | None = None,
                    retry: bool = False):
    """Progress lines for the job log: step, images still running, rate and ETA of the batch (or
    of its non-convergence retry: ``retry``, with the retry's own ``total``). ``where`` gets the
    current step (for the message of an interrupted job)."""
    start, first = time.perf_counter(), None
    if where is not None and retry:
        where.update(step=0, retry=True)

    def on_step(it: int, active: int) -> None:
        nonlocal first
        first = it - 1 if first is None else first
        if where is not None:
            where["step"] = it
        if it % every and it != total:
            return
        rate = (it - first) / max(time.perf_counter() - start, 1e-9)
        log(progress_line(len(ids), it, total, active, rate, retry=retry))

    return on_step


@contextlib.contextmanager
def interruptible(ctx, ids: list[str], where: dict, settings):
    """Ctrl-C in the Adam loop becomes :class:`Interrupted` with one line for the user: the step
    reached and what a rerun resumes from (the last checkpoint, if any was written). ``ctx``: the
    job's :class:`latentopt.optimize.context.JobContext`."""
    try:
        yield
    except KeyboardInterrupt as exc:
        if isinstance(exc, Interrupted):
            raise
        raise Interrupted(_interrupt_message(ctx, ids, where, settings)) from None


def _interrupt_message(ctx, ids: list[str], where: dict, settings) -> str:
    saved = ctx.store.load_batch(ids) if ctx.store else None
    step = f"{'retry ' if where.get('retry') else ''}step {where.get('step', 0)}"
    head = f"{ctx.arm} {ids[0]}{f' (+{len(ids) - 1} more)' if len(ids) > 1 else ''}: interrupted at {step}"
    if saved is not None:
        kept = f"first attempt, step {saved['iteration']}; the retry restarts" if where.get("retry") else f"step {saved['iteration']}"
        return f"{head}; checkpoint kept ({kept}); rerun the same command to resume"
    return (f"{head}; no checkpoint of this batch yet (one every {settings.checkpoint_interval} steps); "
            "finished images are kept; rerun the same command to resume")
