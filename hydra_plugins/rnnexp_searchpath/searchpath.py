"""rnnexp-train finds the packaged studies by name wherever rnnexp is installed:

    rnnexp-train -m --config-name fastest_convergence

and their sampler options (hydra/sweeper/sampler=tpe_grouped) from any config. Only rnnexp-train's
search path is changed: other Hydra apps in the same environment see nothing of it.
"""
from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

from rnnexp.configs import SWEEPS_DIR, TRAIN_DIR


class RnnexpSearchPathPlugin(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        paths = {element.path for element in search_path.get_path()}
        if str(TRAIN_DIR) in paths or f"file://{TRAIN_DIR}" in paths:
            search_path.append(provider="rnnexp", path=f"file://{SWEEPS_DIR}")
