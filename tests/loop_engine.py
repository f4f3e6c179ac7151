"""An engine that trains a batch member by member with the single-member engine: a stand-in for a
stacked engine in launcher tests (same numbers as single runs by construction)."""
import numpy as np

from rnnexp.engine.torch_single import TorchModuleEngine


class LoopEngine:
    def __init__(self, group, members):
        if group.model != "torch_rnn":
            raise ValueError(f"LoopEngine trains torch_rnn only, got {group.model!r}")
        self.engines = [TorchModuleEngine(group, [m]) for m in members]

    def step(self):
        steps = [e.step() for e in self.engines]
        return (np.concatenate([loss for loss, _ in steps]),
                np.concatenate([spelled for _, spelled in steps]))

    def keep(self, mask):
        self.engines = [e for e, k in zip(self.engines, mask) if k]

    def export(self, i):
        return self.engines[i].export(0)
