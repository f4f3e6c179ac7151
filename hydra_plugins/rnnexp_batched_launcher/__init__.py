"""hydra/launcher=batched: trains the jobs of a sweep in stacked batches (see docs/launcher.md)."""
