"""Training AdaTAD end to end: optimizer and schedule, EMA, one training step, checkpoints, the loop, DDP."""
