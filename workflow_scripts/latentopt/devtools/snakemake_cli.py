"""The Snakemake command line the tests and the benchmarks run, and the "Job stats" table it prints."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from latentopt.workflow.plan import parse_optimize_rule


def snakemake_command(*args: str, snakefile: str | Path, targets: Sequence[str] = (), configfiles: Sequence[str | Path] = (),
                      directory: str | Path | None = None, cores: int | str | None = None, script: bool = False) -> list[str]:
    """``snakemake [targets] [--configfile C...] --snakefile S [--directory D] [--cores N] [args]``.

    Snakemake runs in this interpreter (``python -m snakemake``), or, with ``script``, through the
    ``snakemake`` script beside it when there is one. ``--configfile`` takes a variable number of
    values, so ``--snakefile`` always follows it: a positional argument among ``args`` (a target)
    is never read as a config file. ``targets`` come first, before any option that takes a
    variable number of values (``--quiet all`` among ``args``)."""
    exe = Path(sys.executable).parent / "snakemake"
    cmd = [str(exe)] if script and exe.is_file() else [sys.executable, "-m", "snakemake"]
    cmd += [str(t) for t in targets]
    if configfiles:
        cmd += ["--configfile", *map(str, configfiles)]
    cmd += ["--snakefile", str(snakefile)]
    if directory is not None:
        cmd += ["--directory", str(directory)]
    if cores is not None:
        cmd += ["--cores", str(cores)]
    return [*cmd, *args]


def job_stats(output: str) -> dict[str, int]:
    """The first "Job stats" table in Snakemake's output (a dry run prints it twice, a run once
    at its start): rule -> number of jobs, with the ``total`` row; {} when there is none."""
    counts: dict[str, int] = {}
    inside = False
    for line in output.splitlines():
        parts = line.split()
        if parts[:2] == ["job", "count"]:
            inside = True
            continue
        if inside:
            if len(parts) == 2 and parts[1].isdigit():
                counts[parts[0]] = int(parts[1])
            elif counts and not line.startswith("-"):
                break
    return counts


def chunk_stats(output: str) -> dict[str, int]:
    """:func:`job_stats` with the optimization rules of one chunk counted together, whatever the
    arm: ``optimize_<chunk>_<arm>`` (one rule per arm and chunk) -> ``optimize_<chunk>``, the
    number of arms whose job of that chunk is planned (a study's ``<model>_`` prefix kept)."""
    counts: dict[str, int] = {}
    for rule, n in job_stats(output).items():
        parsed = parse_optimize_rule(rule)
        key = f"{parsed[0]}optimize_{parsed[1]}" if parsed else rule
        counts[key] = counts.get(key, 0) + n
    return counts
