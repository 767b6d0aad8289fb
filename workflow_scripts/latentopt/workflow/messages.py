"""What the driver tells the user at the start and at the end of a run (pure Python, no torch).

Paths are printed absolute: the results folder and data root of a config are relative to the
working directory, which is not always the repository (``snakemake -s latentopt/Snakefile`` from
the parent folder plans a fresh run into ``./results``).
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import Iterable

from latentopt.workflow import layout
from latentopt.workflow.study import model_results_dir, study_dir
from latentopt.workflow.sweeps import sweep_groups

BANNER = "NOT RESEARCH RESULTS — synthetic / uncalibrated components"


def absolute(path: str | Path) -> Path:
    """``path`` made absolute against the working directory (``~`` expanded), not resolved."""
    return Path(os.path.abspath(Path(path).expanduser()))


def start_lines(config: dict) -> list[str]:
    """The run's results folder and data root, absolute, and the arms of each sweep (printed when
    the first job starts)."""
    return [
        f"latentopt: results folder {absolute(config['results_dir'])}",
        f"latentopt: data root {absolute(config['data']['root'])} (working directory {os.getcwd()})",
        *(f"latentopt: sweep {base}: {len(arms)} arm(s): {', '.join(a['arm'] for a in arms)}"
          for base, arms in sweep_groups(config).items()),
    ]


def _snakemake_words() -> list[str]:
    """How this driver was started (``snakemake``, ``.venv/bin/snakemake``, ``python -m snakemake``)."""
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else "snakemake"
    if Path(argv0).name == "snakemake":
        return [argv0]
    return [sys.executable, "-m", "snakemake"]


def report_command(config: dict, snakefile: str | Path | None = None, configfiles: Iterable = (),
                   config_args: Iterable[str] = ()) -> str:
    """The command that builds the HTML report of this run, to be run from the working directory:
    the same Snakefile, config files and ``--config`` overrides, ``--report <results>/report.html``."""
    cwd = Path(os.getcwd())
    words = _snakemake_words()
    if snakefile is not None and absolute(snakefile) != cwd / "Snakefile":
        words += ["--snakefile", _short_path(snakefile, cwd)]
    files = [_short_path(f, cwd) for f in configfiles]
    if files:
        words += ["--configfile", *files]
    args = list(config_args or ())
    if args:
        words += ["--config", *args]
    words += ["--report", _short_path(absolute(config["results_dir"]) / "report.html", cwd)]
    return shlex.join(words)


def _short_path(path: str | Path, cwd: Path) -> str:
    """Relative to ``cwd`` when inside it (the command is run from there), else absolute."""
    p = absolute(path)
    try:
        return str(p.relative_to(cwd))
    except ValueError:
        return str(p)


def end_lines(config: dict, html_command: str, synthetic: list[str] | None = None) -> list[str]:
    """What a finished run says last: where its results are, the report, the HTML-report command
    (run from the working directory) and, when the run used random or demo-only models, the banner."""
    results = absolute(config["results_dir"])
    lines = [
        f"latentopt: results in {results}",
        f"latentopt: report {results / layout.report_file('.').name} (figures in {results / 'report_figures'})",
        *browser_lines(results),
        f"latentopt: HTML report (from {os.getcwd()}): {html_command}",
    ]
    if synthetic:
        lines.append(f"latentopt: {BANNER}: " + "; ".join(synthetic) + ". Do not quote these numbers.")
    return lines


def browser_lines(results: Path) -> list[str]:
    """The pages of a run to open in a browser (from ``file://``, no server): the report on one
    page, the per-image explorer and the live progress page."""
    return [
        f"latentopt: report page {(results / layout.report_html_file('.').name).as_uri()}",
        f"latentopt: image explorer {(results / layout.explorer_file('.').name).as_uri()}",
        f"latentopt: live progress {layout.live_page_file(results).as_uri()}",
    ]


def study_end_lines(config: dict, models: list[str], synthetic: list[str] | None = None) -> list[str]:
    """What a finished study says last: each model's results folder and report, the study's
    report and, when a model or metric network is random or demo-only, the banner."""
    study = absolute(study_dir(config))
    lines = [f"latentopt: study of {len(models)} models ({', '.join(models)}) in {absolute(config['results_dir'])}"]
    for m in models:
        model_results = absolute(model_results_dir(config, m))
        lines.append(f"latentopt: {m}: report {model_results / layout.report_file('.').name}")
        lines.append(f"latentopt: {m}: image explorer {(model_results / layout.explorer_file('.').name).as_uri()}")
    lines.append(f"latentopt: study report {study / 'study_report.md'} (figures in {study / 'figures'})")
    lines.append(f"latentopt: study report page {(study / 'study_report.html').as_uri()}")
    lines.append(f"latentopt: study image explorer (every model's arms side by side) "
                 f"{(study / layout.explorer_file('.').name).as_uri()}")
    lines.append(f"latentopt: live progress {layout.live_page_file(absolute(config['results_dir'])).as_uri()}")
    if synthetic:
        lines.append(f"latentopt: {BANNER}: " + "; ".join(synthetic) + ". Do not quote these numbers.")
    return lines


def other_arms_lines(results: str | Path, paths: list[Path]) -> list[str]:
    """What a finished run says about outputs of arms that are no longer in its config (a removed
    sweep value, a dropped loss): kept, listed, never deleted."""
    if not paths:
        return []
    root = absolute(results)
    names = ", ".join(str(absolute(p).relative_to(root)) + ("/" if p.is_dir() else "") for p in paths)
    return [f"latentopt: kept in {root}, not part of this config's run (arms no longer in the config; "
            f"delete them by hand if they are not wanted): {names}"]
