"""Checks of the launcher's options. (A private module: Hydra's plugin scan re-executes the public
ones, which would make a second, different exception class.)"""
from __future__ import annotations

from typing import Optional


class LauncherOptionError(ValueError):
    """A hydra.launcher option that cannot be used; the message names it."""


def _check(ok: bool, key: str, rule: str, value) -> None:
    if not ok:
        raise LauncherOptionError(f"hydra.launcher.{key}: {rule}, got {value!r}")


def check_options(max_batch: Optional[int], device: Optional[str], dtype: Optional[str]) -> None:
    _check(max_batch is None or (isinstance(max_batch, int) and not isinstance(max_batch, bool)
                                 and max_batch >= 1),
           "max_batch", "must be an integer >= 1 or null", max_batch)
    _check(device in (None, "auto", "cpu", "cuda"), "device", "must be auto, cpu, cuda or null", device)
    _check(dtype in (None, "float32", "float64"), "dtype", "must be float32, float64 or null", dtype)
