"""torch.optim's SGD, Adam, Adagrad and RMSprop for many members at once.

Every tensor the optimizer touches has the member axis LAST: parameters and gradients are (..., M),
typically one flat (P, M) buffer, and each numeric hyperparameter is an (M,) tensor that broadcasts
against it. So one batch can mix learning rates, alphas, betas, eps, momenta, ... while the update is
still a handful of elementwise ops over the whole buffer. Boolean arguments (nesterov, amsgrad,
centered, maximize, decoupled_weight_decay) change the code path, so they are shared by the batch.

The formulas and their operation order follow torch.optim's single-tensor path (torch 2.13), which
is what torch.optim runs for CPU tensors; a member of a batch therefore follows the trajectory of
torch.optim.<Optimizer> with the same arguments. Argument names, defaults and range checks are
torch's own.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import Tensor


class OptimizerConfigError(ValueError):
    """An optimizer name, hyperparameter or flag that cannot be used."""


@dataclass(frozen=True)
class Hyper:
    """One numeric argument: torch's default and torch's range check."""

    default: float
    valid: Callable[[float], bool] = lambda v: True
    rule: str = ""


NONNEG = dict(valid=lambda v: v >= 0.0, rule="must be >= 0")
BETA = dict(valid=lambda v: 0.0 <= v < 1.0, rule="must be in [0, 1)")


class StackedOptimizer:
    """Base: per-member hyperparameters as (M,) tensors, state created on the first step."""

    name = ""
    hypers: dict[str, Hyper] = {}
    flag_names: tuple[str, ...] = ()

    def __init__(self, hparams: Sequence[Mapping[str, Any]], flags: Mapping[str, bool] | None = None,
                 *, dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu"):
        if len(hparams) == 0:
            raise OptimizerConfigError(f"{self.name}: no members")
        self.dtype, self.device = dtype, torch.device(device)
        self.flags = self._parse_flags(dict(flags or {}))
        columns = self._parse_hparams(hparams)  # name -> list of M floats
        # float64 copies feed the per-step scalars (bias corrections, decayed lr), computed in double
        # like torch does with Python floats; working-dtype copies feed the elementwise ops.
        self.h64 = {k: torch.tensor(v, dtype=torch.float64, device=self.device) for k, v in columns.items()}
        self.h = {k: v.to(dtype) for k, v in self.h64.items()}
        self.step_count = 0
        self.state: dict[str, Tensor] = {}
        self._init_derived()

    # ---- configuration -------------------------------------------------------------------------
    def _parse_flags(self, flags: dict[str, bool]) -> dict[str, bool]:
        from rnnexp.engine import BOOL_OPTIMIZER_ARGS

        out = {name: False for name in self.flag_names}
        for key, value in flags.items():
            if key not in BOOL_OPTIMIZER_ARGS:
                raise OptimizerConfigError(f"{self.name}: unknown flag {key!r} (known: {', '.join(BOOL_OPTIMIZER_ARGS)})")
            if not isinstance(value, (bool, int)) or value not in (0, 1):
                raise OptimizerConfigError(f"{self.name}: flag {key}={value!r} must be true or false")
            if key not in self.flag_names:
                if value:
                    raise OptimizerConfigError(f"{self.name}: has no flag {key!r} (its flags: {', '.join(self.flag_names)})")
                continue
            out[key] = bool(value)
        return out

    def _parse_hparams(self, hparams: Sequence[Mapping[str, Any]]) -> dict[str, list[float]]:
        columns: dict[str, list[float]] = {k: [] for k in self.hypers}
        for i, member in enumerate(hparams):
            values = self._expand(dict(member), i)
            for key in self.hypers:
                columns[key].append(values.get(key, self.hypers[key].default))
        return columns

    def _expand(self, member: dict[str, Any], i: int) -> dict[str, float]:
        """One member's arguments as floats, checked; Adam's `betas` pair becomes beta1, beta2."""
        out: dict[str, float] = {}
        for key, value in member.items():
            if key == "betas" and "beta1" in self.hypers:
                if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 2:
                    raise OptimizerConfigError(f"{self.name}: member {i} betas={value!r} must be a pair")
                out["beta1"] = self._number(i, "betas[0]", value[0])
                out["beta2"] = self._number(i, "betas[1]", value[1])
            elif key in self.hypers and key not in ("beta1", "beta2"):
                out[key] = self._number(i, key, value)
            else:
                known = [k for k in self.hypers if k not in ("beta1", "beta2")]
                known += ["betas"] if "beta1" in self.hypers else []
                raise OptimizerConfigError(f"{self.name}: unknown hyperparameter {key!r} for member {i} "
                                           f"(known: {', '.join(known)})")
        for key, value in out.items():
            hyper = self.hypers[key]
            if not hyper.valid(value):
                shown = {"beta1": "betas[0]", "beta2": "betas[1]"}.get(key, key)
                raise OptimizerConfigError(f"{self.name}: member {i} {shown}={value!r} {hyper.rule}")
        self._check_member(out, i)
        return out

    def _number(self, i: int, key: str, value: Any) -> float:
        if isinstance(value, bool):
            raise OptimizerConfigError(f"{self.name}: member {i} {key}={value!r} must be a number")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise OptimizerConfigError(f"{self.name}: member {i} {key}={value!r} must be a number") from None

    def _check_member(self, values: dict[str, float], i: int) -> None:
        """Cross-argument checks (SGD's nesterov)."""

    def _init_derived(self) -> None:
        """Per-member constants derived once from the hyperparameters."""

    # ---- training ------------------------------------------------------------------------------
    @property
    def num_members(self) -> int:
        return len(self.h64["lr"])

    def step(self, params: Tensor, grads: Tensor) -> None:
        """params, grads (..., M): update params in place, like torch.optim's step()."""
        if params.shape[-1] != self.num_members:
            raise OptimizerConfigError(f"{self.name}: params have {params.shape[-1]} members, optimizer {self.num_members}")
        self.step_count += 1
        grad = -grads if self.flags.get("maximize") else grads
        self._update(params, grad)

    def _update(self, params: Tensor, grad: Tensor) -> None:
        raise NotImplementedError

    def _state(self, key: str, like: Tensor, fill: Tensor | float = 0.0) -> Tensor:
        if key not in self.state:
            self.state[key] = torch.zeros_like(like).add_(fill)
        return self.state[key]

    def keep(self, index: Tensor) -> None:
        """Keep only the members at `index` (long (A',), in order), hyperparameters and state alike."""
        index = torch.as_tensor(index, dtype=torch.long, device=self.device)
        self.h64 = {k: v[index] for k, v in self.h64.items()}
        self.h = {k: v[index] for k, v in self.h.items()}
        self.state = {k: v[..., index].contiguous() for k, v in self.state.items()}
        self._init_derived()

    def _weight_decayed(self, params: Tensor, grad: Tensor) -> Tensor:
        """grad + weight_decay * param (torch: grad.add(param, alpha=weight_decay)); skipped when all 0."""
        if self.any_weight_decay:
            return torch.addcmul(grad, params, self.h["weight_decay"])
        return grad


class SGD(StackedOptimizer):
    name = "sgd"
    hypers = {"lr": Hyper(1e-3, **NONNEG), "momentum": Hyper(0.0, **NONNEG),
              "dampening": Hyper(0.0), "weight_decay": Hyper(0.0, **NONNEG)}
    flag_names = ("nesterov", "maximize")

    def _check_member(self, values, i):
        if self.flags["nesterov"] and (values.get("momentum", 0.0) <= 0 or values.get("dampening", 0.0) != 0):
            raise OptimizerConfigError(f"sgd: member {i} momentum={values.get('momentum', 0.0)!r} "
                                       f"dampening={values.get('dampening', 0.0)!r}: nesterov needs momentum > 0 "
                                       "and dampening 0")

    def _init_derived(self):
        h = self.h
        self.any_weight_decay = bool((self.h64["weight_decay"] != 0).any())
        self.has_momentum = h["momentum"] != 0
        self.any_momentum, self.all_momentum = bool(self.has_momentum.any()), bool(self.has_momentum.all())
        self.one_minus_dampening = (1 - self.h64["dampening"]).to(self.dtype)
        self.neg_lr = -h["lr"]

    def _update(self, params, grad):
        grad = self._weight_decayed(params, grad)
        direction = grad
        if self.any_momentum:
            m = self.h["momentum"]
            if "momentum_buffer" not in self.state:  # first step: the buffer is a copy of the gradient
                buf = self.state["momentum_buffer"] = grad.clone()
            else:
                buf = self.state["momentum_buffer"]
                buf.mul_(m).addcmul_(grad, self.one_minus_dampening)
            direction = torch.addcmul(grad, buf, m) if self.flags["nesterov"] else buf
            if not self.all_momentum:  # torch skips the buffer entirely where momentum == 0
                direction = torch.where(self.has_momentum, direction, grad)
        params.addcmul_(direction, self.neg_lr)


class Adam(StackedOptimizer):
    name = "adam"
    hypers = {"lr": Hyper(1e-3, **NONNEG), "beta1": Hyper(0.9, **BETA), "beta2": Hyper(0.999, **BETA),
              "eps": Hyper(1e-8, **NONNEG), "weight_decay": Hyper(0.0, **NONNEG)}
    flag_names = ("amsgrad", "maximize", "decoupled_weight_decay")

    def _init_derived(self):
        h64 = self.h64
        self.any_weight_decay = bool((h64["weight_decay"] != 0).any())
        self.decay_factor = (1 - h64["lr"] * h64["weight_decay"]).to(self.dtype)
        self.one_minus_beta1 = (1 - h64["beta1"]).to(self.dtype)
        self.one_minus_beta2 = (1 - h64["beta2"]).to(self.dtype)

    def _update(self, params, grad):
        h, h64, step = self.h, self.h64, self.step_count
        if self.any_weight_decay and self.flags["decoupled_weight_decay"]:
            params.mul_(self.decay_factor)  # torch: param.mul_(1 - lr * weight_decay)
        elif self.any_weight_decay:
            grad = torch.addcmul(grad, params, h["weight_decay"])
        exp_avg = self._state("exp_avg", params)
        exp_avg_sq = self._state("exp_avg_sq", params)
        exp_avg.lerp_(grad, self.one_minus_beta1)
        exp_avg_sq.mul_(h["beta2"]).addcmul_(grad * self.one_minus_beta2, grad)
        # bias corrections in double, per member (M,)
        bias_correction1 = 1 - h64["beta1"] ** step
        bias_correction2_sqrt = (1 - h64["beta2"] ** step) ** 0.5
        neg_step_size = (-(h64["lr"] / bias_correction1)).to(self.dtype)
        second = exp_avg_sq
        if self.flags["amsgrad"]:
            second = self._state("max_exp_avg_sq", params)
            torch.maximum(second, exp_avg_sq, out=second)
        denom = (second.sqrt() / bias_correction2_sqrt.to(self.dtype)).add_(h["eps"])
        params.addcmul_(exp_avg / denom, neg_step_size)  # torch: addcdiv_(exp_avg, denom, value=-step_size)


class Adagrad(StackedOptimizer):
    name = "adagrad"
    hypers = {"lr": Hyper(1e-2, **NONNEG), "lr_decay": Hyper(0.0, **NONNEG),
              "weight_decay": Hyper(0.0, **NONNEG), "initial_accumulator_value": Hyper(0.0, **NONNEG),
              "eps": Hyper(1e-10, **NONNEG)}
    flag_names = ("maximize",)

    def _init_derived(self):
        self.any_weight_decay = bool((self.h64["weight_decay"] != 0).any())

    def _update(self, params, grad):
        h, h64 = self.h, self.h64
        grad = self._weight_decayed(params, grad)
        clr = h64["lr"] / (1 + (self.step_count - 1) * h64["lr_decay"])  # (M,) decayed lr, in double
        state_sum = self._state("sum", params, h["initial_accumulator_value"])
        state_sum.addcmul_(grad, grad)
        std = state_sum.sqrt().add_(h["eps"])
        params.addcmul_(grad / std, (-clr).to(self.dtype))  # torch: addcdiv_(grad, std, value=-clr)


class RMSprop(StackedOptimizer):
    name = "rmsprop"
    hypers = {"lr": Hyper(1e-2, **NONNEG), "alpha": Hyper(0.99, **NONNEG), "eps": Hyper(1e-8, **NONNEG),
              "weight_decay": Hyper(0.0, **NONNEG), "momentum": Hyper(0.0, **NONNEG)}
    flag_names = ("centered", "maximize")

    def _init_derived(self):
        self.any_weight_decay = bool((self.h64["weight_decay"] != 0).any())
        self.any_momentum = bool((self.h64["momentum"] > 0).any())
        self.one_minus_alpha = (1 - self.h64["alpha"]).to(self.dtype)
        self.neg_lr = -self.h["lr"]

    def _update(self, params, grad):
        h = self.h
        grad = self._weight_decayed(params, grad)
        square_avg = self._state("square_avg", params)
        square_avg.mul_(h["alpha"]).addcmul_(grad * self.one_minus_alpha, grad)
        if self.flags["centered"]:
            grad_avg = self._state("grad_avg", params)
            grad_avg.lerp_(grad, self.one_minus_alpha)
            avg = square_avg.addcmul(grad_avg, grad_avg, value=-1).sqrt_()
        else:
            avg = square_avg.sqrt()
        avg.add_(h["eps"])
        if self.any_momentum:
            # where momentum == 0 the buffer is exactly grad / avg, torch's momentum-free update
            buf = self._state("momentum_buffer", params)
            buf.mul_(h["momentum"]).addcdiv_(grad, avg)
            params.addcmul_(buf, self.neg_lr)  # torch: param.add_(buf, alpha=-lr)
        else:
            params.addcmul_(grad / avg, self.neg_lr)  # torch: param.addcdiv_(grad, avg, value=-lr)


OPTIMIZERS: dict[str, type[StackedOptimizer]] = {"sgd": SGD, "adam": Adam, "adagrad": Adagrad, "rmsprop": RMSprop}


def make_optimizer(name: str, hparams: Sequence[Mapping[str, Any]], flags: Mapping[str, bool] | None = None,
                   *, dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu") -> StackedOptimizer:
    """The stacked optimizer called `name` (sgd | adam | adagrad | rmsprop) for len(hparams) members."""
    if name not in OPTIMIZERS:
        raise OptimizerConfigError(f"unknown optimizer {name!r} (known: {', '.join(OPTIMIZERS)})")
    return OPTIMIZERS[name](hparams, flags, dtype=dtype, device=device)
