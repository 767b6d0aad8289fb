"""latentopt: per-image optimization of VAE latents and its evaluation.

The library behind the Snakemake pipeline. Each module holds one concern:
``config`` (schema + validation), ``images`` (discovery, loading, preprocessing),
``autoencoders`` (model loading), ``ssim``/``losses``/``metrics``, ``optimizer``,
``checkpoints``/``fileio`` (atomic, verified files), ``datasets`` (per-loss datasets),
``evaluation``/``fid``/``statistics`` and ``report``.
"""

__version__ = "0.2.0"


def _in_snakemake_script_job() -> bool:
    """A Snakemake ``script:`` job runs its script as __main__ with a ``snakemake`` object in it."""
    import sys

    return type(getattr(sys.modules.get("__main__"), "snakemake", None)).__name__ == "Snakemake"


if _in_snakemake_script_job():  # Ctrl-C during a job's imports: one line, no traceback
    from latentopt.core.joblog import quiet_interrupts

    quiet_interrupts()
