"""The torch-free layer the Snakefile imports at parse time: config and its schema, the work
plan, output layout, integrity, the driver lock, progress, the weight registry and objectives."""
