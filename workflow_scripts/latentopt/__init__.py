"""latentopt: per-image optimization of VAE latents and its evaluation.

The library behind the Snakemake pipeline, one subpackage per stage (docs/development.md):
``workflow`` (torch-free: config, settings, plan, layout, integrity, specs; all the Snakefile
imports), ``core`` (torch-free infrastructure), ``compute`` (device, precision), ``data``,
``models``, ``optimize``, ``metrics``, ``analysis``, ``report``; ``devtools`` serves tests and
benchmarks only.
"""

import sys

__version__ = "0.2.0"


def _in_snakemake_script_job() -> bool:
    """A Snakemake ``script:`` job runs its script as __main__ with a ``snakemake`` object in it."""
    return type(getattr(sys.modules.get("__main__"), "snakemake", None)).__name__ == "Snakemake"


if _in_snakemake_script_job():  # Ctrl-C during a job's imports: one line, no traceback
    from latentopt.core.joblog import quiet_interrupts

    quiet_interrupts()
