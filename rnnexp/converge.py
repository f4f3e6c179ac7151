"""When has a run converged? Shared by single runs, the batched engine and every report."""
from __future__ import annotations

from typing import Optional

import numpy as np


def epochs_to_converge(loss: np.ndarray, spelled: np.ndarray, loss_below: float) -> Optional[int]:
    """The first epoch (1-based) from which, through the last epoch, the loss stays below
    `loss_below` and the word is spelled; None when that never happens.

    loss, spelled: (E,) per-epoch values of a run that went the full E epochs.
    """
    ok = np.asarray(spelled, bool) & (np.asarray(loss, float) < loss_below)
    if len(ok) == 0 or not ok[-1]:
        return None
    failures = np.flatnonzero(~ok)
    return int(failures[-1]) + 2 if len(failures) else 1
