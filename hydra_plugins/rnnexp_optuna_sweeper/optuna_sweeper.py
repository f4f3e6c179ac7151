"""The plugin class Hydra discovers. It stays light: Hydra imports every public module under
hydra_plugins at each start, so Optuna is imported only when the sweeper is really used."""
from typing import Any, List

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from . import config  # noqa: F401 - registers hydra/sweeper=optuna with the ConfigStore


class OptunaSweeper(Sweeper):
    def __init__(self, **kwargs: Any) -> None:
        from ._core import OptunaSweeperImpl

        self._impl = OptunaSweeperImpl(**kwargs)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        self._impl.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: List[str]) -> Any:
        return self._impl.sweep(arguments)
