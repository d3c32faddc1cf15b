"""Files a run writes: checkpoints, the workdir guard, metric writers."""
