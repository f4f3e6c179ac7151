"""hydra/sweeper=optuna: a Hydra sweeper on current Optuna, with resume, pruning and seeds."""
