"""The optimization stage: one job per chunk, Adam on latents, the decoder step, checkpoints,
the losses and the quality gate."""
