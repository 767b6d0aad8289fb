"""The torch-free layer the Snakefile imports at parse time: config and its schema, the work
plan and its sources, output layout, integrity, the driver lock, progress, the weight registry,
objectives, and the model, loss and metric specs (tests/test_layering.py: importing any of it loads
neither torch nor pandas, scipy, PIL, matplotlib, diffusers, lpips or pytorch-fid)."""
