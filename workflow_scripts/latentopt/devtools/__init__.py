"""Development tools shared by the tests and the benchmarks (nothing in the pipeline imports them):
the Snakemake command line and its "Job stats" table (snakemake_cli), fault injection into a
finished run (faults)."""
