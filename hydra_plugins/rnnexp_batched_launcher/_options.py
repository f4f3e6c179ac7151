"""Checks of the launcher's options. (A private module: Hydra's plugin scan re-executes the public
ones, which would make a second, different exception class.)"""
from __future__ import annotations

from typing import Optional

from rnnexp.errors import require


class LauncherOptionError(ValueError):
    """A hydra.launcher option that cannot be used; the message names it."""


def _check(ok: bool, key: str, rule: str, value) -> None:
    require(ok, f"hydra.launcher.{key}", rule, value, LauncherOptionError)


def _positive_int_or_none(x) -> bool:
    return x is None or (isinstance(x, int) and not isinstance(x, bool) and x >= 1)


def check_options(max_batch: Optional[int], device: Optional[str], dtype: Optional[str],
                  threads: Optional[int] = None) -> None:
    _check(_positive_int_or_none(max_batch), "max_batch", "must be an integer >= 1 or null", max_batch)
    _check(_positive_int_or_none(threads), "threads", "must be an integer >= 1 or null", threads)
    _check(device in (None, "auto", "cpu", "cuda"), "device", "must be auto, cpu, cuda or null", device)
    _check(dtype in (None, "float32", "float64"), "dtype", "must be float32, float64 or null", dtype)
