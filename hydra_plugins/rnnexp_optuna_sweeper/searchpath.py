"""Puts the sweeper's `hydra/sweeper=optuna` option (conf/hydra/sweeper/optuna.yaml) on every
Hydra app's config search path, after the app's own config dir: an app that has a
hydra/sweeper/optuna.yaml of its own (rnnexp-train) gets that one, with its defaults."""
from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin


class OptunaSweeperSearchPathPlugin(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        search_path.append(provider="rnnexp-optuna-sweeper",
                           path="pkg://hydra_plugins.rnnexp_optuna_sweeper.conf")
