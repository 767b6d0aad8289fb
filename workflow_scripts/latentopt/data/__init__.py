"""Images in and datasets out: discovery-independent reading/preprocessing, preparation of the
references, the per-loss datasets and the embedded demo data."""
