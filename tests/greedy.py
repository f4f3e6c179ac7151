"""Greedy generation by re-running the whole prefix for every new character: the slow, obvious
reference that rnnexp.generate (an incremental recurrence) is checked against."""
from __future__ import annotations

import numpy as np
import torch

from rnnexp.models.numpy_rnn import NumpyRNN, forward


def torch_greedy(model, start_ids: list[int], length: int) -> list[int]:
    """A CharRNN: append the argmax of the next-character logits until `length` ids."""
    ids = list(start_ids)
    with torch.no_grad():
        while len(ids) < length:
            logits = model(torch.tensor(ids, device=model.fc.weight.device))  # (T, V)
            ids.append(int(logits[-1].argmax()))
    return ids


def numpy_greedy(model: NumpyRNN, start_ids, length: int) -> list[int]:
    """A NumpyRNN: the same, through its forward pass (h_0 = 0)."""
    ids = [int(i) for i in start_ids]
    stacked = {k: v[None] for k, v in model.params.items()}  # a batch of one member
    while len(ids) < length:
        _, logits = forward(stacked, np.array(ids))  # (1, T, V)
        ids.append(int(logits[0, -1].argmax()))
    return ids
