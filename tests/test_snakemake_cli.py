"""The one Snakemake command builder and "Job stats" parser the tests and the benchmarks share
(latentopt.devtools.snakemake_cli), checked against Snakemake's own argument parser and a captured
dry run."""

from __future__ import annotations

import sys
from pathlib import Path

from latentopt.devtools.snakemake_cli import job_stats, snakemake_command

# Captured: `snakemake -n --quiet rules` on the demo config (synthetic_kl, limit_per_split 2,
# images_per_job 2), Snakemake 9.27.1, from "Building DAG" on. A dry run prints the table twice.
JOB_STATS = """\
Job stats:
job                        count
-----------------------  -------
prepare_gate_train_000         1
prepare_test_000               1
prepare_val_000                1
inception_features             5
optimize_gate_train_000        4
optimize_test_000              4
optimize_val_000               4
build_dataset_baseline         1
quality_gate                   3
evaluate_dataset               4
build_dataset_lpips            1
build_dataset_psnr             1
build_dataset_ssim             1
summarize_evaluation           1
analyze_categories             1
test_hypotheses                1
report                         1
all                            1
total                         36
"""
DRY_RUN = "Building DAG of jobs...\n" + JOB_STATS + "\n" + JOB_STATS + """\

Reasons:
    (check individual jobs above for details)
    input files updated by another job:
        all, analyze_categories, build_dataset_baseline, build_dataset_lpips, build_dataset_psnr, build_dataset_ssim, evaluate_dataset, inception_features, optimize_gate_train_000, optimize_test_000, optimize_val_000, quality_gate, report, summarize_evaluation, test_hypotheses
    output files have to be generated:
        analyze_categories, build_dataset_baseline, build_dataset_lpips, build_dataset_psnr, build_dataset_ssim, evaluate_dataset, inception_features, optimize_gate_train_000, optimize_test_000, optimize_val_000, prepare_gate_train_000, prepare_test_000, prepare_val_000, quality_gate, report, summarize_evaluation, test_hypotheses
This was a dry-run (flag -n). The order of jobs does not reflect the order of execution.
"""


def test_job_stats_reads_the_first_table_of_a_captured_dry_run():
    counts = job_stats(DRY_RUN)
    rows = [line.split() for line in DRY_RUN.split("Job stats:")[1].splitlines()[3:] if line.strip()]
    assert counts == {rule: int(n) for rule, n in rows}  # every row of the table, nothing else
    assert counts["total"] == sum(n for rule, n in counts.items() if rule != "total") == 36
    assert counts["optimize_test_000"] == 4 and "Reasons:" not in counts
    # a later table (a run prints one per invocation in its log) does not override the first
    later = DRY_RUN.replace("optimize_test_000              4", "optimize_test_000              9", 1)
    assert job_stats(later)["optimize_test_000"] == 9 and job_stats(later + DRY_RUN)["optimize_test_000"] == 9
    assert job_stats("Building DAG of jobs...\nNothing to be done (all requested files are present and up to date).\n") == {}


def test_snakemake_command_means_what_it_says_to_snakemakes_own_parser():
    """Targets stay targets and config files stay config files, whatever follows them (the
    builder puts --snakefile after the variable-length --configfile)."""
    from snakemake.cli import get_argument_parser

    parser = get_argument_parser()
    cmd = snakemake_command("--nolock", "--quiet", "all", snakefile="/r/Snakefile", targets=["a/x.json", "b/y.json"],
                            configfiles=["/r/demo.yaml", Path("/t/c.yaml")], directory="/t", cores=2)
    assert cmd[:3] == [sys.executable, "-m", "snakemake"]
    args = parser.parse_args(cmd[3:])
    assert sorted(args.targets) == ["a/x.json", "b/y.json"] and [str(p) for p in args.configfile] == ["/r/demo.yaml", "/t/c.yaml"]
    assert (str(args.snakefile), str(args.directory), args.cores, args.nolock) == ("/r/Snakefile", "/t", 2, True)
    # a target among the trailing arguments (how the tests pass them) is still a target
    args = parser.parse_args(snakemake_command("-n", "results/report.md", snakefile="S", configfiles=["c.yaml"])[3:])
    assert set(args.targets) == {"results/report.md"} and [str(p) for p in args.configfile] == ["c.yaml"] and args.dryrun
    assert "--directory" not in snakemake_command(snakefile="S") and "--cores" not in snakemake_command(snakefile="S")


def test_optimize_rule_names_read_back_to_chunk_and_arm():
    from latentopt.devtools.snakemake_cli import chunk_stats
    from latentopt.workflow.plan import Chunk, optimize_rule_name, parse_optimize_rule

    for chunk in (Chunk("test", 0, ()), Chunk("train", 12, (), gate=True)):
        for arm in ("baseline", "psnr_gf", "psnr-lr0.1-it50"):
            assert parse_optimize_rule(optimize_rule_name(chunk, arm)) == ("", chunk.name, arm)
            assert parse_optimize_rule("small_" + optimize_rule_name(chunk, arm)) == ("small_", chunk.name, arm)
    assert parse_optimize_rule("build_dataset") is None and parse_optimize_rule("optimize_images") is None
    table = "Job stats:\njob count\n---- ----\noptimize_test_000_psnr 1\noptimize_test_000_baseline 1\nbig_optimize_gate_val_001_ssim 1\nreport 1\ntotal 4\n"
    assert chunk_stats(table) == {"optimize_test_000": 2, "big_optimize_gate_val_001": 1, "report": 1, "total": 4}
