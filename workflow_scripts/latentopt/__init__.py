"""latentopt: per-image optimization of VAE latents and its evaluation.

The library behind the Snakemake pipeline, one subpackage per stage (README, *Development*):
``workflow`` (torch-free: config, settings, plan, layout, integrity, specs; all the Snakefile
imports), ``core`` (torch-free infrastructure), ``compute`` (device, precision), ``data``,
``models``, ``optimize``, ``metrics``, ``analysis``, ``report``; ``devtools`` serves tests and
benchmarks only.
"""

__version__ = "0.2.0"
