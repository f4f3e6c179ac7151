"""One CharRNN (nn.RNN, nn.GRU or nn.LSTM, then nn.Linear) under a torch.optim optimizer: the
per-job path for single torch_rnn, torch_gru and torch_lstm runs."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from rnnexp.config import TORCH_CELLS
from rnnexp.engine import GroupSpec, MemberSpec
from rnnexp.models.torch_rnn import build

TORCH_OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam,
                    "adagrad": torch.optim.Adagrad, "rmsprop": torch.optim.RMSprop}


class TorchModuleEngine:
    """A group of exactly one member, trained the way the report trains it."""

    def __init__(self, group: GroupSpec, members: list[MemberSpec]):
        if len(members) != 1:
            raise ValueError(f"TorchModuleEngine trains one member, got {len(members)}")
        (member,) = members
        self.model = build(group.vocab_size, group.hidden_size, seed=member.seed,
                           num_layers=group.model_arg("num_layers", 1),
                           nonlinearity=group.model_arg("nonlinearity", "tanh"), bias=group.bias,
                           dtype=group.dtype, device=group.device, cell=TORCH_CELLS[group.model])
        args = dict(member.hparams)
        args.update(member.flags)
        self.optimizer = TORCH_OPTIMIZERS[member.optimizer](self.model.parameters(), **args)
        self.inputs = torch.tensor(group.inputs, device=group.device)
        self.targets = torch.tensor(group.targets, device=group.device)
        self.criterion = nn.CrossEntropyLoss()

    def step(self) -> tuple[np.ndarray, np.ndarray]:
        self.optimizer.zero_grad()
        logits = self.model(self.inputs)  # (T, V)
        loss = self.criterion(logits, self.targets)
        spelled = bool((logits.argmax(-1) == self.targets).all())
        loss.backward()
        self.optimizer.step()
        return np.array([loss.item()]), np.array([spelled])

    def keep(self, mask: np.ndarray) -> None:
        """Nothing to drop: the loop stops once its one member leaves."""

    def export(self, i: int) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().double().numpy() for k, v in self.model.state_dict().items()}
