"""rnnexp: hyperparameter experiments on small character-level RNNs."""

__version__ = "0.1.0"
