"""The autoencoders: one convention over diffusers, TAESD-family and the demo's own model."""
