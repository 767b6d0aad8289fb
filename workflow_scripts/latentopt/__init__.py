"""latentopt: per-image optimization of VAE latents and its evaluation.

The library behind the Snakemake pipeline. Each module holds one concern:
``config`` (schema + validation), ``images`` (discovery, loading, preprocessing),
``autoencoders`` (model loading), ``ssim``/``losses``/``metrics``, ``optimizer``,
``checkpoints``/``fileio`` (atomic, verified files), ``datasets`` (per-loss datasets),
``evaluation``/``fid``/``statistics`` and ``report``.
"""

__version__ = "0.2.0"
