"""What an Optuna study needs from rnnexp: its storage (`storage`), the trial hooks the training
loop calls (`hooks`), and the end-of-study files (`outputs`). The sweeper plugin
(hydra_plugins.rnnexp_optuna_sweeper) and the study package build on these."""
