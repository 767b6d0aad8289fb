"""Infrastructure every stage uses, torch-free: atomic files, job logs, stage clocks, provenance."""
