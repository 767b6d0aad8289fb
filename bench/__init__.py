"""Benchmark of the latent optimization (see bench/README.md). ``bench/benchmark.py`` is the CLI;
the modules hold one concern each: configs, models (images and models), flops (FLOP counts, GPU
peaks, activation bytes), throughput, quality, orchestration, end_to_end (the real pipeline with
per-stage times), projection, tables; ``gpu_check.py`` runs every GPU measurement in one call."""
