"""The report's Q1 model: a vanilla RNN written from scratch in NumPy, with analytic BPTT.

    h_t    = tanh(W_xh x_t + W_hh h_{t-1} + b_h),   h_0 = 0
    o_t    = W_yh h_t + b_y
    yhat_t = softmax(o_t)
    L      = sum_t -log yhat_t[target_t]            ("sum"), or that divided by T ("mean")

The core is *stacked*: every parameter carries a leading member axis M, so M independent models
(different seeds, different learning rates) train as one computation on the same word. The single
model, NumpyRNN, is the M = 1 case of the same code. Shapes, with V the vocabulary and H the hidden
size: W_xh (M,H,V), W_hh (M,H,H), W_yh (M,V,H), b_h (M,H), b_y (M,V). Without bias the dicts simply
have no b_h / b_y keys. The derivation of the gradients is in docs/derivation.md.
"""
from __future__ import annotations

import numpy as np

from rnnexp.errors import require

WEIGHT_KEYS = ("W_xh", "W_hh", "W_yh")
BIAS_KEYS = ("b_h", "b_y")
PARAM_KEYS = WEIGHT_KEYS + BIAS_KEYS
INITS = ("randn", "uniform")
REDUCTIONS = ("sum", "mean")


class NumpyRNNError(ValueError):
    """Bad arguments for the NumPy RNN."""


# ----------------------------------------------------------------------------------------------
# checks (done once by callers; the stacked core itself trusts its arguments)

def check_choice(key: str, value, allowed: tuple) -> None:
    require(value in allowed, key, f"must be one of {', '.join(map(repr, allowed))}", value,
            NumpyRNNError)


def check_sequences(inputs, targets, vocab_size: int) -> tuple[np.ndarray, np.ndarray]:
    """-> inputs, targets as (T,) int64 arrays of equal length T >= 1 with ids in [0, V)."""
    inputs, targets = np.asarray(inputs), np.asarray(targets)
    for name, ids in (("inputs", inputs), ("targets", targets)):
        if ids.ndim != 1 or len(ids) == 0 or not np.issubdtype(ids.dtype, np.integer):
            raise NumpyRNNError(f"{name} must be a non-empty 1-d integer sequence, got shape "
                                f"{ids.shape} dtype {ids.dtype}")
        if ids.min() < 0 or ids.max() >= vocab_size:
            raise NumpyRNNError(f"{name} has an id outside [0, {vocab_size}): {ids.tolist()}")
    if len(inputs) != len(targets):
        raise NumpyRNNError(f"inputs and targets differ in length: {len(inputs)} != {len(targets)}")
    return inputs.astype(np.int64), targets.astype(np.int64)


def has_bias(params: dict) -> bool:
    present = [k in params for k in BIAS_KEYS]
    if any(present) != all(present):
        raise NumpyRNNError(f"params must hold both or neither of b_h and b_y, got {sorted(params)}")
    return all(present)


def check_single_shapes(params: dict) -> None:
    """W_xh (H,V), W_hh (H,H), W_yh (V,H), b_h (H,), b_y (V,), with H and V read off W_xh."""
    if np.ndim(params["W_xh"]) != 2:
        raise NumpyRNNError(f"W_xh must be 2-d (H, V), got shape {np.shape(params['W_xh'])}")
    H, V = np.shape(params["W_xh"])
    expected = {"W_xh": (H, V), "W_hh": (H, H), "W_yh": (V, H), "b_h": (H,), "b_y": (V,)}
    for k, p in params.items():
        if np.shape(p) != expected[k]:
            raise NumpyRNNError(f"{k} must have shape {expected[k]} for H={H}, V={V}, "
                                f"got {np.shape(p)}")


# ----------------------------------------------------------------------------------------------
# initialisation

def init_member(vocab_size: int, hidden_size: int, seed: int, init: str = "randn",
                bias: bool = True) -> dict[str, np.ndarray]:
    """One member's float64 initial params, drawn from default_rng(seed) as W_xh, W_hh, W_yh."""
    check_choice("init", init, INITS)
    V, H = vocab_size, hidden_size
    rng = np.random.default_rng(seed)
    params = {}
    for key, shape, fan_in in (("W_xh", (H, V), V), ("W_hh", (H, H), H), ("W_yh", (V, H), H)):
        if init == "randn":  # min-char-rnn
            params[key] = rng.standard_normal(shape) * 0.01
        else:  # U(-1/sqrt(fan_in), +1/sqrt(fan_in))
            bound = np.sqrt(1.0 / fan_in)
            params[key] = rng.uniform(-bound, bound, size=shape)
    if bias:
        params["b_h"], params["b_y"] = np.zeros(H), np.zeros(V)
    return params


def init_stacked(vocab_size: int, hidden_size: int, seeds, *, init: str = "randn",
                 bias: bool = True, dtype=np.float64) -> dict[str, np.ndarray]:
    """Members' initial params stacked on axis 0; member m depends only on seeds[m].
    Drawn in float64 and then cast, so every dtype starts from the same weights."""
    members = [init_member(vocab_size, hidden_size, int(s), init, bias) for s in seeds]
    return {k: np.stack([p[k] for p in members]).astype(dtype) for k in members[0]}


# ----------------------------------------------------------------------------------------------
# the stacked core

def forward(params: dict, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """-> hs (T+1, M, H) with hs[0] = h_0 = 0, and logits o (M, T, V)."""
    W_xh, W_hh, W_yh = params["W_xh"], params["W_hh"], params["W_yh"]
    M, H, _ = W_xh.shape
    T = len(inputs)
    # x_t is one-hot, so W_xh x_t is column inputs[t] of W_xh; gather all T at once: (T, M, H)
    xw = W_xh[:, :, inputs].transpose(2, 0, 1)
    if "b_h" in params:
        xw = xw + params["b_h"]  # (M, H) broadcasts over T
    hs = np.zeros((T + 1, M, H), dtype=W_xh.dtype)
    for t in range(T):
        # W_hh h_{t-1} for every member: (M, H, H) @ (M, H, 1) -> (M, H, 1)
        np.tanh(xw[t] + np.matmul(W_hh, hs[t][:, :, None])[:, :, 0], out=hs[t + 1])
    # o_t = W_yh h_t for all t: (M, T, H) @ (M, H, V) -> (M, T, V)
    logits = np.matmul(hs[1:].transpose(1, 0, 2), W_yh.transpose(0, 2, 1))
    if "b_y" in params:
        logits += params["b_y"][:, None, :]
    return hs, logits


def softmax_and_nll(logits: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """logits (M, T, V) -> probabilities yhat (M, T, V) and -log yhat_t[target_t] (M, T)."""
    shifted = logits - logits.max(axis=-1, keepdims=True)  # exp cannot overflow
    exp = np.exp(shifted)
    total = exp.sum(axis=-1)  # (M, T)
    nll = np.log(total) - shifted[:, np.arange(len(targets)), targets]
    return exp / total[:, :, None], nll


def stacked_loss_and_grads(params: dict, inputs: np.ndarray, targets: np.ndarray,
                           reduction: str = "sum"):
    """Loss, exact (unclipped) gradients and teacher-forced predictions for every member.

    params: stacked dict (see module docstring); inputs, targets: (T,) int, shared by all members.
    -> loss (M,), grads (dict, same keys and shapes as params), predictions (M, T) int: the argmax
    of yhat_t, so a member spells the word exactly when predictions == targets everywhere.
    """
    T = len(inputs)
    steps = np.arange(T)
    hs, logits = forward(params, inputs)
    yhat, nll = softmax_and_nll(logits, targets)
    scale = 1.0 / T if reduction == "mean" else 1.0
    loss = nll.sum(axis=1) * scale

    # dL/do_t = yhat_t - y_t (y_t one-hot at target_t), times 1/T for the mean: (M, T, V)
    d_logits = yhat
    d_logits[:, steps, targets] -= 1.0
    if scale != 1.0:
        d_logits *= scale
    h_seq = hs[1:].transpose(1, 0, 2)  # h_1..h_T as (M, T, H)
    grads = {"W_yh": np.matmul(d_logits.transpose(0, 2, 1), h_seq)}  # sum_t (yhat_t - y_t) h_t^T

    # BPTT: delta_t = (1 - h_t^2) * (W_yh^T (yhat_t - y_t) + W_hh^T delta_{t+1}), delta_{T+1} = 0,
    # kept time-major (T, M, H) so that each step reads and writes contiguous (M, H) blocks
    W_hh = params["W_hh"]
    d_tanh = 1.0 - hs[1:] * hs[1:]  # (T, M, H)
    # W_yh^T (yhat_t - y_t) for all t: (M, T, V) @ (M, V, H) -> (M, T, H), viewed as (T, M, H)
    d_h_out = np.matmul(d_logits, params["W_yh"]).transpose(1, 0, 2)
    deltas = np.empty_like(d_tanh)
    d_h_next = np.zeros_like(d_tanh[0])  # W_hh^T delta_{t+1}: (M, H)
    for t in reversed(range(T)):
        deltas[t] = d_tanh[t] * (d_h_out[t] + d_h_next)
        # W_hh^T delta_t as a row vector: (M, 1, H) @ (M, H, H) -> (M, 1, H)
        d_h_next = np.matmul(deltas[t][:, None, :], W_hh)[:, 0]

    d_pre = deltas.transpose(1, 2, 0)  # (M, H, T)
    grads["W_hh"] = np.matmul(d_pre, hs[:-1].transpose(1, 0, 2))  # sum_t delta_t h_{t-1}^T
    one_hot = np.zeros((T, params["W_xh"].shape[2]), dtype=d_pre.dtype)
    one_hot[steps, inputs] = 1.0
    grads["W_xh"] = np.matmul(d_pre, one_hot)  # sum_t delta_t x_t^T: (M, H, V)
    if "b_h" in params:
        grads["b_h"] = deltas.sum(axis=0)  # sum_t delta_t
        grads["b_y"] = d_logits.sum(axis=1)  # sum_t (yhat_t - y_t)
    grads = {k: grads[k] for k in params}  # the caller's key order
    return loss, grads, logits.argmax(axis=-1)


# ----------------------------------------------------------------------------------------------
# the single model: the M = 1 case of the stacked core

class NumpyRNN:
    def __init__(self, vocab_size: int, hidden_size: int, *, bias: bool = True,
                 init: str = "randn", seed: int = 0, loss_reduction: str = "sum",
                 dtype=np.float64):
        for key, value in (("vocab_size", vocab_size), ("hidden_size", hidden_size)):
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise NumpyRNNError(f"{key} must be a positive integer, got {value!r}")
        check_choice("loss_reduction", loss_reduction, REDUCTIONS)
        stacked = init_stacked(vocab_size, hidden_size, [seed], init=init, bias=bias, dtype=dtype)
        self.params = {k: v[0] for k, v in stacked.items()}
        self.loss_reduction = loss_reduction

    @classmethod
    def from_params(cls, params: dict, loss_reduction: str = "sum") -> "NumpyRNN":
        """A model holding copies of `params` (NumpyRNN.params format; bias iff b_h/b_y present)."""
        missing = [k for k in WEIGHT_KEYS if k not in params]
        unknown = [k for k in params if k not in PARAM_KEYS]
        if missing or unknown:
            raise NumpyRNNError(f"params need keys {list(WEIGHT_KEYS)} (+ optional b_h, b_y); "
                                f"missing {missing}, unknown {unknown}")
        check_choice("loss_reduction", loss_reduction, REDUCTIONS)
        has_bias(params)
        arrays = {k: np.asarray(params[k]) for k in PARAM_KEYS if k in params}
        check_single_shapes(arrays)
        dtype = np.result_type(*arrays.values())
        if not np.issubdtype(dtype, np.floating):
            dtype = np.float64
        model = cls.__new__(cls)
        model.params = {k: a.astype(dtype, copy=True) for k, a in arrays.items()}
        model.loss_reduction = loss_reduction
        return model

    @property
    def vocab_size(self) -> int:
        return self.params["W_xh"].shape[1]

    def _stacked_view(self) -> dict[str, np.ndarray]:
        return {k: v[None] for k, v in self.params.items()}  # views with M = 1

    def loss_and_grads(self, inputs, targets) -> tuple[float, dict[str, np.ndarray]]:
        """The loss and its exact, unclipped gradients (same keys as .params)."""
        inputs, targets = check_sequences(inputs, targets, self.vocab_size)
        has_bias(self.params)
        loss, grads, _ = stacked_loss_and_grads(self._stacked_view(), inputs, targets,
                                                self.loss_reduction)
        return float(loss[0]), {k: g[0] for k, g in grads.items()}
