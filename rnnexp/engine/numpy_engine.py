"""The NumPy engine: a group of NumpyRNN members trained as one stacked computation.

Members share the word, sizes, init scheme, loss reduction and clipping; each has its own seed and
its own optimizer (rnnexp.engine.mixed steps each optimizer's members). The optimizers below are NumPy
versions of torch.optim.SGD and torch.optim.Adagrad (same argument names, same update order), with
every numeric argument a per-member array of shape (M,) so one batch can mix them.
"""
from __future__ import annotations

import inspect

import numpy as np

from rnnexp.config import model_args
from rnnexp.engine import GroupSpec, MemberSpec
from rnnexp.engine._malloc import keep_large_blocks
from rnnexp.engine.mixed import MixedOptimizer
from rnnexp.models.numpy_rnn import (INITS, REDUCTIONS, check_choice, check_sequences,
                                     init_stacked, stacked_loss_and_grads)

DTYPES = {"float32": np.float32, "float64": np.float64}
MODEL_ARGS = model_args("numpy_rnn")  # {name: default}


class NumpyEngineError(ValueError):
    """A group or member the NumPy engine cannot train."""


# ----------------------------------------------------------------------------------------------
# optimizers: params and grads are dicts of stacked arrays (leading member axis M)

def per_member(values: np.ndarray, like: np.ndarray) -> np.ndarray:
    """(M,) -> (M, 1, ..., 1) in like's dtype, so it broadcasts against a stacked param (M, ...)."""
    return values.astype(like.dtype, copy=False).reshape((-1,) + (1,) * (like.ndim - 1))


class StackedOptimizer:
    """Per-member numeric hyperparameters self.hp[name] (M,), per-param state (M, ...)."""

    numeric: tuple[str, ...] = ()  # the numeric arguments, in torch.optim's order
    flags: tuple[str, ...] = ()  # the boolean arguments

    def __init__(self, **hparams):
        arrays = {k: np.atleast_1d(np.asarray(v, dtype=np.float64)) for k, v in hparams.items()}
        try:
            shape = np.broadcast_shapes(*(a.shape for a in arrays.values()))  # (M,)
        except ValueError:
            raise NumpyEngineError(f"{self.name} hyperparameters differ in member count: "
                                   f"{ {k: a.shape for k, a in arrays.items()} }") from None
        if len(shape) != 1:
            raise NumpyEngineError(f"{self.name} hyperparameters must be scalars or (M,) arrays")
        self.hp = {k: np.broadcast_to(a, shape).copy() for k, a in arrays.items()}
        self.state: dict[str, dict[str, np.ndarray]] = {}  # state name -> param key -> (M, ...)

    @property
    def name(self) -> str:
        return type(self).__name__

    def require_nonnegative(self, *keys: str) -> None:
        for k in keys:
            bad = np.flatnonzero(~(self.hp[k] >= 0))  # NaN is bad too
            if bad.size:
                value = float(self.hp[k][bad[0]])
                raise NumpyEngineError(f"{self.name} {k} must be >= 0, got {value:g} (member {bad[0]})")

    def keep(self, mask: np.ndarray) -> None:
        self.hp = {k: v[mask] for k, v in self.hp.items()}
        self.state = {name: {k: v[mask] for k, v in s.items()} for name, s in self.state.items()}


class SGD(StackedOptimizer):
    """torch.optim.SGD: g = grad (+ weight_decay p); where momentum != 0: buf = g at the first step,
    else momentum buf + (1 - dampening) g, and g = g + momentum buf (nesterov) or buf; p -= lr g."""

    numeric = ("lr", "momentum", "dampening", "weight_decay")
    flags = ("nesterov", "maximize")

    def __init__(self, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov: bool = False, *, maximize: bool = False):
        super().__init__(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay)
        self.nesterov, self.maximize = bool(nesterov), bool(maximize)
        self.require_nonnegative("lr", "momentum", "weight_decay")
        if self.nesterov:
            bad = np.flatnonzero((self.hp["momentum"] <= 0) | (self.hp["dampening"] != 0))
            if bad.size:
                m = bad[0]
                raise NumpyEngineError(
                    f"SGD nesterov requires momentum > 0 and dampening 0, got momentum "
                    f"{float(self.hp['momentum'][m]):g} dampening {float(self.hp['dampening'][m]):g} (member {m})")

    def step(self, params: dict, grads: dict) -> None:
        buffers = self.state.setdefault("momentum_buffer", {})
        has_momentum = self.hp["momentum"] != 0  # (M,); torch skips the buffer where it is 0
        for key, p in params.items():
            lr, momentum, dampening, weight_decay = (per_member(self.hp[k], p) for k in self.numeric)
            g = -grads[key] if self.maximize else grads[key]
            if self.hp["weight_decay"].any():
                g = g + weight_decay * p
            if has_momentum.any():
                if key not in buffers:
                    buffers[key] = g.copy()
                else:
                    buffers[key] *= momentum
                    buffers[key] += (1 - dampening) * g
                buf = buffers[key]
                g = np.where(per_member(has_momentum, p), g + momentum * buf if self.nesterov else buf, g)
            p -= lr * g


class Adagrad(StackedOptimizer):
    """torch.optim.Adagrad: g = grad (+ weight_decay p); clr = lr / (1 + (step - 1) lr_decay);
    sum += g^2; p -= clr g / (sqrt(sum) + eps), eps outside the square root as in torch."""

    numeric = ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps")
    flags = ("maximize",)

    def __init__(self, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0,
                 eps=1e-10, *, maximize: bool = False):
        super().__init__(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                         initial_accumulator_value=initial_accumulator_value, eps=eps)
        self.maximize = bool(maximize)
        self.require_nonnegative(*self.numeric)
        self.steps = 0  # shared: every member steps together

    def step(self, params: dict, grads: dict) -> None:
        sums = self.state.setdefault("sum", {})
        self.steps += 1
        for key, p in params.items():
            lr, lr_decay, weight_decay, initial, eps = (per_member(self.hp[k], p) for k in self.numeric)
            if key not in sums:
                sums[key] = np.broadcast_to(initial, p.shape).copy()
            g = -grads[key] if self.maximize else grads[key]
            if self.hp["weight_decay"].any():
                g = g + weight_decay * p
            clr = lr / (1 + (self.steps - 1) * lr_decay)
            sums[key] += g * g
            p -= clr * (g / (np.sqrt(sums[key]) + eps))


OPTIMIZERS = {"sgd": SGD, "adagrad": Adagrad}


def make_optimizer(name: str, hparams: list[dict], flags: dict[str, bool]) -> StackedOptimizer:
    """One optimizer for all members; hparams[m] holds member m's numeric arguments (torch names),
    a missing one takes torch's default. flags: the group's boolean arguments."""
    if name not in OPTIMIZERS:
        raise NumpyEngineError(f"the NumPy model supports only sgd and adagrad, got optimizer {name!r}")
    cls = OPTIMIZERS[name]
    defaults = {k: v.default for k, v in inspect.signature(cls).parameters.items()}
    for k in sorted({k for h in hparams for k in h}):
        if k not in cls.numeric:
            raise NumpyEngineError(f"{name} has no numeric argument {k!r} "
                                   f"(known: {', '.join(cls.numeric)})")
    for k, on in flags.items():
        if k not in cls.flags and on:
            raise NumpyEngineError(f"{name} has no flag {k!r} (known: {', '.join(cls.flags)})")
    columns = {}
    for k in cls.numeric:
        column = [h.get(k, defaults[k]) for h in hparams]
        for value in column:
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise NumpyEngineError(f"{name} {k} must be a number, got {value!r}")
        columns[k] = np.array(column, dtype=np.float64)
    return cls(**columns, **{k: bool(flags.get(k, False)) for k in cls.flags})


# ----------------------------------------------------------------------------------------------
# the engine

def read_model_args(group: GroupSpec) -> dict:
    args = dict(MODEL_ARGS, **dict(group.model_args))
    unknown = [k for k in args if k not in MODEL_ARGS]
    if unknown:
        raise NumpyEngineError(f"numpy_rnn has no model argument {unknown[0]!r} "
                               f"(known: {', '.join(MODEL_ARGS)})")
    check_choice("init", args["init"], INITS)
    check_choice("loss_reduction", args["loss_reduction"], REDUCTIONS)
    clip = args["clip"]
    if clip is not None and (isinstance(clip, bool) or not isinstance(clip, (int, float))
                             or not clip > 0):
        raise NumpyEngineError(f"clip must be a positive number or None, got {clip!r}")
    return args


def _take(params: dict, sel) -> dict:
    """The members `sel` of stacked arrays (M, ...): views for a slice, copies for an index array."""
    return {k: v[sel] for k, v in params.items()}


def _put(params: dict, sel, part: dict) -> None:
    for k, v in params.items():
        v[sel] = part[k]


class NumpyEngine:
    """Engine protocol (rnnexp.engine) for model "numpy_rnn"."""

    def __init__(self, group: GroupSpec, members: list[MemberSpec]):
        if group.model != "numpy_rnn":
            raise NumpyEngineError(f"NumpyEngine trains model 'numpy_rnn', got {group.model!r}")
        if group.dtype not in DTYPES:
            raise NumpyEngineError(f"dtype must be one of {', '.join(DTYPES)}, got {group.dtype!r}")
        if group.device != "cpu":
            raise NumpyEngineError(f"the NumPy model runs on cpu only, got device {group.device!r}")
        if not members:
            raise NumpyEngineError("NumpyEngine needs at least one member")
        args = read_model_args(group)
        keep_large_blocks()  # a step's large temporaries reuse the heap instead of fresh pages
        self.inputs, self.targets = check_sequences(group.inputs, group.targets, group.vocab_size)
        self.reduction, self.clip = args["loss_reduction"], args["clip"]
        self.optimizer = MixedOptimizer(members, make_optimizer, take=_take, put=_put,
                                        keep=lambda optimizer, mask: optimizer.keep(mask))
        self.params = init_stacked(group.vocab_size, group.hidden_size, [m.seed for m in members],
                                   init=args["init"], bias=group.bias, dtype=DTYPES[group.dtype])

    @property
    def size(self) -> int:
        return len(self.params["W_xh"])

    def step(self) -> tuple[np.ndarray, np.ndarray]:
        # a diverging member turns inf/NaN in its own rows only; the caller sees it in the loss
        # and drops it with keep(), so the floating-point warnings would only be noise
        with np.errstate(over="ignore", invalid="ignore"):
            loss, grads, predictions = stacked_loss_and_grads(self.params, self.inputs,
                                                              self.targets, self.reduction)
            spelled = (predictions == self.targets).all(axis=1)
            if self.clip is not None:
                for g in grads.values():
                    np.clip(g, -self.clip, self.clip, out=g)
            self.optimizer.step(self.params, grads)
        return loss.astype(np.float64), spelled

    def keep(self, mask: np.ndarray) -> None:
        mask = np.asarray(mask)
        if mask.dtype != bool or mask.shape != (self.size,):
            raise NumpyEngineError(f"keep needs a bool mask of shape ({self.size},), got "
                                   f"{mask.dtype} {mask.shape}")
        self.params = {k: v[mask] for k, v in self.params.items()}
        self.optimizer.keep(mask)

    def export(self, i: int) -> dict[str, np.ndarray]:
        return {k: v[i].astype(np.float64) for k, v in self.params.items()}
