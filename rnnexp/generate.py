"""Greedy and sampled generation from trained weights, in NumPy.

Works on the weights either model exports (NumpyRNN.params or CharRNN.state_dict()), so a run
dir's checkpoint, a single run and a batched member all generate through the same code. Running
the recurrence incrementally gives exactly what re-running the whole prefix would (h_0 = 0).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np


@dataclass
class Layers:
    """An RNN as plain arrays: per layer (W_in (H,In), W_hh (H,H), b (H,)), then W_out (V,H), b_out (V,)."""

    cells: list[tuple[np.ndarray, np.ndarray, np.ndarray]]
    W_out: np.ndarray
    b_out: np.ndarray
    nonlinearity: str = "tanh"

    @property
    def vocab_size(self) -> int:
        return self.W_out.shape[0]


def layers_from(params: dict, nonlinearity: str = "tanh") -> Layers:
    """Accept NumpyRNN.params keys or CharRNN.state_dict() keys."""
    p = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    if "W_xh" in p:
        H = p["W_hh"].shape[0]
        V = p["W_yh"].shape[0]
        cell = (p["W_xh"], p["W_hh"], p.get("b_h", np.zeros(H)))
        return Layers([cell], p["W_yh"], p.get("b_y", np.zeros(V)), "tanh")
    cells = []
    layer = 0
    while f"rnn.weight_ih_l{layer}" in p:
        W_ih, W_hh = p[f"rnn.weight_ih_l{layer}"], p[f"rnn.weight_hh_l{layer}"]
        b = p.get(f"rnn.bias_ih_l{layer}", 0.0) + p.get(f"rnn.bias_hh_l{layer}", 0.0)
        cells.append((W_ih, W_hh, np.broadcast_to(b, (W_hh.shape[0],))))
        layer += 1
    V = p["fc.weight"].shape[0]
    return Layers(cells, p["fc.weight"], p.get("fc.bias", np.zeros(V)), nonlinearity)


def _step(net: Layers, hidden: list[np.ndarray], token: int) -> np.ndarray:
    """Advance every layer by one character; return the output logits (V,)."""
    act = np.tanh if net.nonlinearity == "tanh" else (lambda z: np.maximum(z, 0.0))
    x = None
    for layer, (W_in, W_hh, b) in enumerate(net.cells):
        pre = (W_in[:, token] if layer == 0 else W_in @ x) + W_hh @ hidden[layer] + b
        hidden[layer] = act(pre)
        x = hidden[layer]
    return net.W_out @ x + net.b_out


def generate(net: Layers, start_ids: list[int], length: int, temperature: float = 0.0,
             rng: Optional[np.random.Generator] = None) -> list[int]:
    """Continue `start_ids` to `length` ids: argmax when temperature is 0, else sample from
    softmax(logits / temperature)."""
    hidden = [np.zeros(W_hh.shape[0]) for _, W_hh, _ in net.cells]
    ids = list(start_ids)
    logits = None
    for token in ids:
        logits = _step(net, hidden, token)
    while len(ids) < length:
        if temperature > 0:
            z = logits / temperature
            p = np.exp(z - z.max())
            nxt = int((rng or np.random.default_rng()).choice(len(p), p=p / p.sum()))
        else:
            nxt = int(np.argmax(logits))
        ids.append(nxt)
        logits = _step(net, hidden, nxt)
    return ids
