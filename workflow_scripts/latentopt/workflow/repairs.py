"""How the check before planning reaches Snakemake without changing anything on disk.

At parse time the rules inspect each results folder (latentopt.workflow.integrity.inspect: reads
only) and :func:`register` the inspection with the driver's Snakemake workflow. Its outputs to
redo are handed to Snakemake's planning as forced files, as ``--forcerun FILE`` would: the DAG
then plans their jobs and everything that depends on them, in every command that plans (dry runs,
``--summary``, ``--report`` included), and nothing has been moved. Only a real run acts on them,
in its ``onstart`` (Snakemake calls it after planning, never in a dry run), through
:func:`apply_all`: a one-model run and a study (one driver for all its models) alike.

Why a hook: Snakemake hands the command line's DAG settings (``--forcerun`` among them) to the
workflow after the Snakefile is parsed, and reads them when it plans (Workflow._prepare_dag, in
9.27.1: ``dag_settings`` is None while parsing). The hook adds the forced files to those settings
at that moment and changes nothing else.
"""

from __future__ import annotations

import os
from typing import Callable

from latentopt.core.fileio import remove_with_record
from latentopt.workflow import chunks, layout
from latentopt.workflow.integrity import Inspection, apply

_ATTR = "latentopt_inspections"


def registered(workflow) -> list[Inspection]:
    """The inspections registered in this driver (one per results folder; a study's models each add theirs)."""
    return getattr(workflow, _ATTR, [])


def register(workflow, inspection: Inspection, log: Callable[[str], None]) -> None:
    """Plan the redo of what ``inspection`` found (forced files at planning); :func:`apply_all` acts on it."""
    if not hasattr(workflow, _ATTR):
        setattr(workflow, _ATTR, [])
        _force_at_planning(workflow, log)
    getattr(workflow, _ATTR).append(inspection)


def _force_at_planning(workflow, log: Callable[[str], None]) -> None:
    prepare, build = getattr(workflow, "_prepare_dag", None), getattr(workflow, "_build_dag", None)
    if not (callable(prepare) and callable(build)):  # a Snakemake whose planning differs from 9.27's
        raise RuntimeError("latentopt's integrity check hooks Snakemake's planning (Workflow._prepare_dag and "
                           "_build_dag, Snakemake 9.27.1 as pinned in requirements.txt); this Snakemake has no such "
                           "methods: install the pinned version")

    def prepare_with_forced_files(*args, **kwargs):
        forced = {path for inspection in registered(workflow) for path in inspection.forced_files()}
        if forced:
            workflow.dag_settings.forcerun = frozenset(workflow.dag_settings.forcerun) | forced
        return prepare(*args, **kwargs)

    def build_and_name_what_is_not_planned(*args, **kwargs):
        result = build(*args, **kwargs)
        for path in not_planned(workflow):
            log(f"integrity: {path} is damaged but Snakemake does not plan its job in this run (a forced job below a "
                "quality gate that reruns is not planned, Snakemake 9.27.1); it stays in place and the next run redoes it")
        return result

    workflow._prepare_dag = prepare_with_forced_files
    workflow._build_dag = build_and_name_what_is_not_planned


def planned_outputs(workflow) -> set[str]:
    """The outputs of the jobs Snakemake planned (absolute paths)."""
    return {os.path.abspath(str(f)) for job in workflow.dag.needrun_jobs() for f in job.output}


def not_planned(workflow) -> list[str]:
    """Forced files whose jobs Snakemake did not plan."""
    planned = planned_outputs(workflow)
    return [path for inspection in registered(workflow) for path in inspection.forced_files()
            if os.path.abspath(path) not in planned]


def apply_all(workflow, log: Callable[[str], None]) -> None:
    """A real run, before its first job, holding the driver lock: every registered inspection applied
    (latentopt.workflow.integrity.apply; raises CannotRepair where damage cannot be moved aside).
    Only what the run will make again is moved aside."""
    planned = planned_outputs(workflow)
    for inspection in registered(workflow):
        apply(inspection, log=log, planned=planned)
    forget_forced_images(workflow, log)


def forget_forced_images(workflow, log: Callable[[str], None]) -> int:
    """An optimization job the user forced (``--forcerun``, ``-R``, ``--forceall``) computes its
    images again: the per-image files its manifest lists are removed before it runs, as Snakemake
    removes a forced job's declared outputs (otherwise the job would restore them: they are not
    declared, latentopt.workflow.chunks). Jobs forced by the integrity check or by Snakemake's
    --rerun-incomplete (a stopped job) are not the user's: they restore their intact images.
    Returns the number of files removed."""
    ours = {os.path.abspath(p) for inspection in registered(workflow) for p in inspection.forced_files()}
    # the user's: rules named by --forcerun/-R (all of them with --forceall) and files named by
    # --forcerun; not the files Snakemake forces itself (an incomplete job's outputs under
    # --rerun-incomplete: its finished images are restored) nor the integrity check's
    user_files = {os.path.abspath(str(f)) for f in (workflow.dag_settings.forcerun or ())} - ours
    removed = 0
    for job in workflow.dag.needrun_jobs():
        if not workflow.dag.reason(job).forced:
            continue
        by_rule = job.rule in workflow.dag.forcerules
        for out in map(str, job.output):
            if not (by_rule or os.path.abspath(out) in user_files):
                continue
            if not layout.is_chunk_manifest(out) or not os.path.exists(out):
                continue
            try:
                listed = chunks.entries(out)
            except (OSError, ValueError, KeyError, TypeError):
                continue  # unreadable: its job recomputes what does not verify anyway
            for item in listed:
                removed += remove_with_record(item.path)
            log(f"{out}: forced, its {len({i.image_id for i in listed})} image(s) are computed again")
    return removed


def damaged_count(workflow) -> int:
    return sum(1 for inspection in registered(workflow) for f in inspection.findings if f.damaged)
