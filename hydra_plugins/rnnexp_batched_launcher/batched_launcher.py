"""The Launcher plugin: Hydra's side of hydra/launcher=batched. The work is in _core.py."""
from __future__ import annotations

from typing import Optional, Sequence

from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from ._options import LauncherOptionError, check_options  # noqa: F401
from .config import BatchedLauncherConf  # noqa: F401  (registers hydra/launcher=batched)


class BatchedLauncher(Launcher):
    def __init__(self, max_batch: Optional[int] = 4096, device: Optional[str] = None,
                 dtype: Optional[str] = None, progress: bool = False, threads: Optional[int] = 1,
                 engine: Optional[str] = None) -> None:
        super().__init__()
        check_options(max_batch, device, dtype, threads)
        self.max_batch, self.device, self.dtype, self.threads = max_batch, device, dtype, threads
        self.progress, self.engine = bool(progress), engine
        self.config: Optional[DictConfig] = None
        self.hydra_context: Optional[HydraContext] = None
        self.task_function: Optional[TaskFunction] = None
        self.composer = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        from ._core import ValidatingLoader
        from ._compose import JobComposer

        self.config, self.task_function = config, task_function
        self.composer = JobComposer(hydra_context.config_loader, config,
                                    defaults={"device": self.device, "dtype": self.dtype})
        # The sweeper checks every job of a batch by composing it before handing the batch over
        # (60 ms a job); with this loader that check is the launcher's own composition (a fraction
        # of a millisecond), which keeps nothing: the launch composes each job again.
        hydra_context.config_loader = ValidatingLoader(hydra_context.config_loader, self.composer)
        self.hydra_context = hydra_context

    def launch(self, job_overrides: Sequence[Sequence[str]],
               initial_job_idx: int) -> Sequence[JobReturn]:
        from ._core import launch_batched

        return launch_batched(self, job_overrides, initial_job_idx)
