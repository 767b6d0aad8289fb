"""Benchmark of the latent optimization (see bench/README.md). ``bench/benchmark.py`` is the CLI;
the modules hold one concern each: configs, models (images and models), flops (FLOP counts, GPU
peaks, activation bytes), throughput, quality, orchestration, end_to_end (the real pipeline with
per-stage times), projection, tables. Apart from the core: ``drills/`` (one-off measurements:
fault_drill, batching_delta, integrity_cost) and ``device/`` (gpu_check.py, every GPU measurement in
one call, and what it carries to the GPU machine)."""
