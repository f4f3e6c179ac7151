"""One batch, several optimizers: members under different optimizer types or boolean flags train
in one stacked forward/backward, and each (optimizer, flags) part of the batch steps its own
members' share of the parameters with its own stacked optimizer.

An engine owns the layout (which axis is the member axis, how its optimizers drop members); this
module only decides which members go together and where they sit. A part whose members are
contiguous in the batch (the launcher keeps them so, and keep() preserves order) steps a view of
the parameters, so no copy is made; otherwise its members are gathered and scattered back.
A batch under one optimizer is one part over the whole buffer: exactly the path of a plain group.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from rnnexp.engine import MemberSpec


def optimizer_key(member: MemberSpec) -> tuple:
    """What members must share to step under one stacked optimizer: its type and its flags."""
    return member.optimizer, tuple(sorted(member.flags))


def _selector(positions: np.ndarray, n: int):
    """A slice where positions are one run of consecutive members (a view), else the index array."""
    if len(positions) == n:
        return slice(None)
    if len(positions) and positions[-1] - positions[0] == len(positions) - 1:
        return slice(int(positions[0]), int(positions[-1]) + 1)
    return positions


class MixedOptimizer:
    """The optimizers of one batch. `make(name, hparams, flags)` builds the stacked optimizer of one
    part; `take(x, sel)` reads the members `sel` (a slice or an index array) of a parameter or
    gradient buffer, `put(x, sel, part)` writes them back (only called for index arrays), and
    `keep(optimizer, mask)` drops a part's members where mask is False."""

    def __init__(self, members: Sequence[MemberSpec], make: Callable[[str, list, dict], Any],
                 take: Callable[[Any, Any], Any], put: Callable[[Any, Any, Any], None],
                 keep: Callable[[Any, np.ndarray], None]):
        positions: dict[tuple, list[int]] = {}
        for i, member in enumerate(members):
            positions.setdefault(optimizer_key(member), []).append(i)
        self._take, self._put, self._keep = take, put, keep
        parts = [(np.asarray(where), make(name, [members[i].hparams for i in where], dict(flags)))
                 for (name, flags), where in positions.items()]
        self._set_parts(parts, len(members))

    def _set_parts(self, parts: list, n: int) -> None:
        # (positions (A_k,), their selector, the part's optimizer): a selector changes only
        # when members leave, so it is found here, not at every step
        self.parts = [(positions, _selector(positions, n), optimizer)
                      for positions, optimizer in parts]

    def step(self, params, grads) -> None:
        for _, sel, optimizer in self.parts:
            if isinstance(sel, slice):
                optimizer.step(self._take(params, sel), self._take(grads, sel))
            else:
                part = self._take(params, sel)
                optimizer.step(part, self._take(grads, sel))
                self._put(params, sel, part)

    def keep(self, mask: np.ndarray) -> None:
        """Keep the members where mask (bool (A,)) is True, in order."""
        new_position = np.cumsum(mask) - 1
        parts = []
        for positions, _, optimizer in self.parts:
            kept = mask[positions]
            if kept.any():
                if not kept.all():
                    self._keep(optimizer, kept)
                parts.append((new_position[positions[kept]], optimizer))
        self._set_parts(parts, int(mask.sum()))
