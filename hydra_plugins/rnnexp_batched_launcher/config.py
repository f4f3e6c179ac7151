"""The launcher's options, registered as hydra/launcher=batched."""
from dataclasses import dataclass
from typing import Optional

from hydra.core.config_store import ConfigStore


@dataclass
class BatchedLauncherConf:
    _target_: str = "hydra_plugins.rnnexp_batched_launcher.batched_launcher.BatchedLauncher"
    # most members trained as one batch; bigger groups are split (null: no limit)
    max_batch: Optional[int] = 4096
    # auto | cpu | cuda: the device of every job that does not set `device` in its own overrides
    # (null: each job keeps its config's device)
    device: Optional[str] = None
    # float32 | float64: likewise for `dtype`
    dtype: Optional[str] = None
    # a tqdm bar over the jobs on stderr (the per-job summary lines are then left out)
    progress: bool = False
    # torch intra-op threads while training (null: torch's own setting). A batch's tensors are
    # small (hidden x members), and with 2 threads the stacked engine ran 15x slower on a busy
    # 2-core machine than with 1
    threads: Optional[int] = 1
    # import path of an Engine class to train every batch with (null: rnnexp.train.default_engine)
    engine: Optional[str] = None


ConfigStore.instance().store(group="hydra/launcher", name="batched", node=BatchedLauncherConf,
                             provider="rnnexp")
