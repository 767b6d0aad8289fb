"""Where torch runs and at what precision: the job's device (GPU lease) and numeric precision."""
