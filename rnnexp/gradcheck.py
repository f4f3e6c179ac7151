"""Central finite differences against analytic gradients, for any f(params) -> scalar.

    errors = check_gradients(f, params, grads)        # {key: relative error}
    assert_gradients_close(f, params, grads, rtol=1e-6)

params is a dict of float64 arrays that f reads; the checker perturbs them in place, one entry at a
time, and restores them. The error of a key is the largest absolute difference between analytic and
numerical entries, relative to the largest entry of either (the key's scale). Scaling by the key
rather than by each entry keeps the measure meaningful where single entries are tiny or zero, where
round-off in f(x+eps) - f(x-eps) would swamp an entrywise ratio; a gradient that is wrong in an
entry that matters, or zero where it should not be, still shows up as an error of order one.
"""
from __future__ import annotations

from typing import Callable

import numpy as np


class GradientCheckError(AssertionError):
    """Analytic and numerical gradients disagree."""


def numerical_gradient(f: Callable[[dict], float], params: dict, key: str,
                       eps: float = 1e-6) -> np.ndarray:
    """(f(p + eps e_i) - f(p - eps e_i)) / (2 eps) for every entry i of params[key]."""
    x = params[key]
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"params[{key!r}] must be a floating array, got {x.dtype}")
    grad = np.zeros(x.shape, dtype=np.float64)
    for i in np.ndindex(x.shape):
        original = x[i]
        try:
            x[i] = original + eps
            f_plus = float(f(params))
            x[i] = original - eps
            f_minus = float(f(params))
        finally:
            x[i] = original
        grad[i] = (f_plus - f_minus) / (2 * eps)
    return grad


def relative_error(analytic: np.ndarray, numerical: np.ndarray) -> float:
    """max |a - n| / max(max |a|, max |n|); 0 when both are all zero."""
    analytic, numerical = np.asarray(analytic, np.float64), np.asarray(numerical, np.float64)
    if analytic.shape != numerical.shape:
        raise ValueError(f"shapes differ: analytic {analytic.shape}, numerical {numerical.shape}")
    scale = max(np.abs(analytic).max(initial=0.0), np.abs(numerical).max(initial=0.0))
    diff = np.abs(analytic - numerical).max(initial=0.0)
    return 0.0 if diff == 0.0 else float(diff / scale)


def check_gradients(f: Callable[[dict], float], params: dict, grads: dict, eps: float = 1e-6,
                    keys=None) -> dict[str, float]:
    """-> {key: relative error of grads[key]} for every key of params (or just `keys`)."""
    keys = list(params) if keys is None else list(keys)
    missing = [k for k in keys if k not in grads]
    if missing:
        raise ValueError(f"grads lack keys {missing}")
    return {k: relative_error(grads[k], numerical_gradient(f, params, k, eps)) for k in keys}


def assert_gradients_close(f: Callable[[dict], float], params: dict, grads: dict, *,
                           rtol: float = 1e-6, eps: float = 1e-6, keys=None) -> dict[str, float]:
    """Raise GradientCheckError naming every key whose relative error exceeds rtol."""
    errors = check_gradients(f, params, grads, eps, keys)
    bad = {k: e for k, e in errors.items() if not e <= rtol}  # NaN counts as bad
    if bad:
        listed = ", ".join(f"{k}: {e:.3g}" for k, e in bad.items())
        raise GradientCheckError(f"gradient check failed (rtol {rtol:g}): {listed}")
    return errors
