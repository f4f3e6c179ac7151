"""The report's Q2 model and its gated variants: one-hot -> nn.RNN | nn.GRU | nn.LSTM -> nn.Linear,
hidden (and cell) state from zeros.

The recurrent module is always the attribute `rnn`, so every cell's state_dict has the same keys
(`rnn.weight_ih_l0`, ..., `fc.weight`, `fc.bias`); a gated cell's weights stack its gates along the
first axis, in PyTorch's order: GRU (r, z, n), LSTM (i, f, g, o).
"""
from __future__ import annotations

import torch
from torch import nn

DTYPES = {"float32": torch.float32, "float64": torch.float64}
CELL_MODULES = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}
GATES = {"rnn": 1, "gru": 3, "lstm": 4}  # rows of weight_ih / weight_hh per hidden unit


class CharRNN(nn.Module):
    def __init__(self, vocab_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, cell: str = "rnn"):
        super().__init__()
        self.vocab_size = vocab_size
        kwargs = {"nonlinearity": nonlinearity} if cell == "rnn" else {}
        self.rnn = CELL_MODULES[cell](vocab_size, hidden_size, num_layers, bias=bias,
                                      batch_first=True, **kwargs)
        self.fc = nn.Linear(hidden_size, vocab_size, bias=bias)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (T,) int -> logits (T, V); h_0 = 0 (and c_0 = 0)."""
        x = nn.functional.one_hot(ids, self.vocab_size).to(self.fc.weight.dtype).unsqueeze(0)
        out, _ = self.rnn(x)  # (1, T, H)
        return self.fc(out[0])


def build(vocab_size: int, hidden_size: int, *, seed: int, num_layers: int = 1,
          nonlinearity: str = "tanh", bias: bool = True, dtype: str = "float64",
          device: str = "cpu", cell: str = "rnn") -> CharRNN:
    """The model with PyTorch's default initialisation drawn from `seed` (in float32, then cast),
    so every dtype and every engine starts from the same weights for the same seed."""
    torch.manual_seed(seed)
    model = CharRNN(vocab_size, hidden_size, num_layers, nonlinearity, bias, cell)
    return model.to(device=device, dtype=DTYPES[dtype])
