"""Snakemake script: the Markdown comparison report, its appendix, the HTML page and the figures."""

from latentopt.core.joblog import job_log
from latentopt.report import write_report
from latentopt.workflow.analysis_settings import ReportSettings

sm = snakemake  # noqa: F821 - injected by Snakemake
with job_log(sm.log[0]) as log:
    write_report(
        ReportSettings.from_params(sm.params.settings),
        cross=sm.input.cross,
        stats=sm.input.stats,
        performance=sm.input.performance,
        table_csv=sm.input.table,
        categories=sm.input.categories,
        hypotheses=sm.input.hypotheses,
        report=sm.output.report,
        appendix=sm.output.appendix,
        html=sm.output.html,
        fig_dir=sm.output.figures,
        gates=sm.input.gates,
        log=log,
    )
