"""Greedy and sampled generation from trained weights, in NumPy.

Works on the weights every model exports (NumpyRNN.params, or CharRNN.state_dict() with an RNN,
GRU or LSTM cell), so a run dir's checkpoint, a single run and a batched member all generate
through the same code. Running the recurrence incrementally gives exactly what re-running the whole
prefix would (h_0 = 0).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np


@dataclass
class Layers:
    """A recurrent net as plain arrays: per layer (W_in (G*H, In), W_hh (G*H, H), b_in (G*H,),
    b_hh (G*H,)), then W_out (V, H), b_out (V,). G is 1 for a plain RNN, 3 for a GRU (gates r, z,
    n) and 4 for an LSTM (i, f, g, o), PyTorch's layouts."""

    cells: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]
    W_out: np.ndarray
    b_out: np.ndarray
    nonlinearity: str = "tanh"
    cell: str = "rnn"  # rnn | gru | lstm

    @property
    def vocab_size(self) -> int:
        return self.W_out.shape[0]


def layers_from(params: dict, nonlinearity: str = "tanh", cell: str = "rnn") -> Layers:
    """Accept NumpyRNN.params keys or CharRNN.state_dict() keys (of the cell `cell`)."""
    p = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    if "W_xh" in p:
        H = p["W_hh"].shape[0]
        V = p["W_yh"].shape[0]
        cell_arrays = (p["W_xh"], p["W_hh"], p.get("b_h", np.zeros(H)), np.zeros(H))
        return Layers([cell_arrays], p["W_yh"], p.get("b_y", np.zeros(V)), "tanh")
    cells = []
    layer = 0
    while f"rnn.weight_ih_l{layer}" in p:
        W_ih, W_hh = p[f"rnn.weight_ih_l{layer}"], p[f"rnn.weight_hh_l{layer}"]
        zeros = np.zeros(W_hh.shape[0])
        cells.append((W_ih, W_hh, p.get(f"rnn.bias_ih_l{layer}", zeros),
                      p.get(f"rnn.bias_hh_l{layer}", zeros)))
        layer += 1
    V = p["fc.weight"].shape[0]
    return Layers(cells, p["fc.weight"], p.get("fc.bias", np.zeros(V)), nonlinearity, cell)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _step(net: Layers, state: list, token: int) -> np.ndarray:
    """Advance every layer by one character; return the output logits (V,). state[layer] is h,
    or (h, c) for an LSTM."""
    x = None
    for layer, (W_in, W_hh, b_in, b_hh) in enumerate(net.cells):
        gi = (W_in[:, token] if layer == 0 else W_in @ x) + b_in
        if net.cell == "lstm":
            h, c = state[layer]
            i, f, g, o = np.split(gi + W_hh @ h + b_hh, 4)
            c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
            state[layer] = (_sigmoid(o) * np.tanh(c), c)
            x = state[layer][0]
            continue
        h = state[layer]
        if net.cell == "gru":
            gh = W_hh @ h + b_hh
            H = len(h)
            r, z = _sigmoid(gi[:H] + gh[:H]), _sigmoid(gi[H:2 * H] + gh[H:2 * H])
            n = np.tanh(gi[2 * H:] + r * gh[2 * H:])
            state[layer] = (1 - z) * n + z * h
        else:
            pre = gi + W_hh @ h + b_hh
            state[layer] = np.tanh(pre) if net.nonlinearity == "tanh" else np.maximum(pre, 0.0)
        x = state[layer]
    return net.W_out @ x + net.b_out


def initial_state(net: Layers) -> list:
    """h_0 = 0 for every layer (and c_0 = 0 for an LSTM's)."""
    zeros = [np.zeros(W_hh.shape[1]) for _, W_hh, _, _ in net.cells]
    return [(z, z.copy()) for z in zeros] if net.cell == "lstm" else zeros


def generate(net: Layers, start_ids: list[int], length: int, temperature: float = 0.0,
             rng: Optional[np.random.Generator] = None) -> list[int]:
    """Continue `start_ids` to `length` ids: argmax when temperature is 0, else sample from
    softmax(logits / temperature)."""
    hidden = initial_state(net)
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
