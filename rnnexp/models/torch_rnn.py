"""The report's Q2 model: one-hot -> nn.RNN -> nn.Linear, hidden state from zeros."""
from __future__ import annotations

import torch
from torch import nn

DTYPES = {"float32": torch.float32, "float64": torch.float64}


class CharRNN(nn.Module):
    def __init__(self, vocab_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True):
        super().__init__()
        self.vocab_size = vocab_size
        self.rnn = nn.RNN(vocab_size, hidden_size, num_layers, nonlinearity=nonlinearity,
                          bias=bias, batch_first=True)
        self.fc = nn.Linear(hidden_size, vocab_size, bias=bias)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (T,) int -> logits (T, V); h_0 = 0."""
        x = nn.functional.one_hot(ids, self.vocab_size).to(self.fc.weight.dtype).unsqueeze(0)
        out, _ = self.rnn(x)  # (1, T, H)
        return self.fc(out[0])


def build(vocab_size: int, hidden_size: int, *, seed: int, num_layers: int = 1,
          nonlinearity: str = "tanh", bias: bool = True, dtype: str = "float64",
          device: str = "cpu") -> CharRNN:
    """The model with PyTorch's default initialisation drawn from `seed` (in float32, then cast),
    so every dtype and every engine starts from the same weights for the same seed."""
    torch.manual_seed(seed)
    model = CharRNN(vocab_size, hidden_size, num_layers, nonlinearity, bias)
    return model.to(device=device, dtype=DTYPES[dtype])
