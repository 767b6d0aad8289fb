"""Snakemake script: the comparison of the models of a study (study_analysis.json, study_report.md and .html, figures)."""

from latentopt.core.joblog import job_log
from latentopt.report.study_report import write_study_report
from latentopt.workflow.analysis_settings import StudySettings

sm = snakemake  # noqa: F821 - injected by Snakemake
models = list(sm.params.study["models"])
with job_log(sm.log[0]) as log:
    write_study_report(
        sm.params.study,
        StudySettings.from_params(sm.params.settings),
        tables={m: sm.input[f"table_{m}"] for m in models},
        performance={m: sm.input[f"performance_{m}"] for m in models},
        reports={m: sm.input[f"report_{m}"] for m in models},
        outputs={"analysis": sm.output.analysis, "report": sm.output.report, "html": sm.output.html, "figures": sm.output.figures},
        log=log,
    )
