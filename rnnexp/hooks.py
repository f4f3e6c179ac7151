"""Per-epoch hooks: how a run reports its loss to whoever launched it (e.g. an Optuna trial)."""
from __future__ import annotations

from typing import Optional, Protocol

from omegaconf import DictConfig


class EpochHook(Protocol):
    def report(self, epoch: int, loss: float) -> bool:
        """Record the loss of `epoch` (1-based); return True to stop (prune) this run."""


def hook_for(cfg: DictConfig) -> Optional[EpochHook]:
    """The hook the run with this config reports to, or None for a plain run."""
    return None
