"""Engines: what the one training loop (rnnexp.train) drives.

An engine trains a *group* of members, configurations that share everything that fixes tensor
shapes (model, word, hidden size, layers, dtype, device) and differ in their seed and their
optimizer: its type, its boolean flags and its numbers (learning rate, alpha, betas, eps, ...).
Members under the same optimizer and flags step under one stacked optimizer (rnnexp.engine.mixed).
A single run is a group of one.

Every engine offers the same three calls:

    step() -> (loss, spelled)   one full-batch epoch for each active member: forward from h_0 = 0,
                                loss, backward, update. loss: float64 ndarray (A,), measured on the
                                forward pass before the update; spelled: bool ndarray (A,), True
                                where the teacher-forced argmax equals every target (which is exactly
                                when greedy generation from the first character spells the word).
    keep(mask)                  mask: bool ndarray (A,); members where it is False leave the batch
                                (pruned or diverged) and are no longer computed. Order is kept.
    export(i) -> dict           the trained parameters of active member i in the single model's
                                format (NumpyRNN.params keys, or CharRNN.state_dict() keys), as
                                float64 NumPy arrays.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

BOOL_OPTIMIZER_ARGS = ("nesterov", "amsgrad", "centered", "maximize", "decoupled_weight_decay")


@dataclass(frozen=True)
class GroupSpec:
    """Everything the members of one batch share."""

    model: str  # "numpy_rnn" | "torch_rnn" | "torch_gru" | "torch_lstm"
    vocab_size: int
    inputs: tuple[int, ...]  # word[:-1] as vocabulary indices
    targets: tuple[int, ...]  # word[1:]
    hidden_size: int
    bias: bool
    # numpy_rnn: init ("randn"|"uniform"), loss_reduction ("sum"|"mean"), clip (float|None)
    # torch_rnn: num_layers (int), nonlinearity ("tanh"|"relu"); torch_gru, torch_lstm: num_layers
    model_args: tuple[tuple[str, Any], ...] = ()
    dtype: str = "float64"  # "float32" | "float64"
    device: str = "cpu"  # "cpu" | "cuda" (already resolved from "auto")

    def model_arg(self, key: str, default=None):
        return dict(self.model_args).get(key, default)


@dataclass
class MemberSpec:
    """What one member owns: its seed and its optimizer (torch.optim names and defaults)."""

    seed: int
    hparams: dict[str, Any] = field(default_factory=dict)  # lr, momentum, betas (a pair), eps, ...
    optimizer: str = "sgd"  # "sgd" | "adam" | "adagrad" | "rmsprop"
    flags: tuple[tuple[str, bool], ...] = ()  # the optimizer's boolean arguments


class Engine(Protocol):
    def step(self) -> tuple[np.ndarray, np.ndarray]: ...

    def keep(self, mask: np.ndarray) -> None: ...

    def export(self, i: int) -> dict[str, np.ndarray]: ...
