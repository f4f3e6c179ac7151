"""A sweep's settings composed with rnnexp-train's config, the way a run of them would be."""
from __future__ import annotations

import copy
import re
from functools import lru_cache

from rnnexp.configs import TRAIN_DIR
from rnnexp.sweeps.grammar import flatten, override
from rnnexp.sweeps.sweep import GROUPS, Setting, Sweep, fail


@lru_cache(maxsize=None)
def _composed(choices: tuple[str, ...]):
    """rnnexp-train's config for these group choices (e.g. model=numpy_rnn), other keys default."""
    from hydra import compose, initialize_config_dir

    from rnnexp.config import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(TRAIN_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=list(choices))


def setting_config(setting: Setting):
    """The config a run of this setting gets (seed at its default): the group choices composed
    by Hydra, every other key set on the typed config (an unknown key or a wrong type fails
    naming the key), then rnnexp's value checks."""
    from omegaconf import OmegaConf

    from rnnexp.config import validate

    choices = tuple(override(k, v) for k, v in setting.values if k in GROUPS)
    cfg = copy.deepcopy(_composed(choices))
    for key, value in setting.values:
        if key not in GROUPS:
            OmegaConf.update(cfg, key, value, merge=False)
    validate(cfg)
    return cfg


def flat_config(setting: Setting) -> dict:
    from omegaconf import OmegaConf

    return flatten(OmegaConf.to_container(setting_config(setting), resolve=True))


def expected_configs(sweep: Sweep) -> list[tuple[Setting, dict]]:
    """Every setting with the full config its runs have (seed left out)."""
    return [(s, {k: v for k, v in flat_config(s).items() if k != "seed"}) for s in sweep.settings()]


def check_settings(sweep: Sweep) -> None:
    """Every setting composes and passes rnnexp's checks; else one line naming the file's key."""
    from rnnexp.errors import one_line

    for setting in sweep.settings():
        try:
            setting_config(setting)
        except Exception as e:  # noqa: BLE001 - any config failure becomes one line naming the key
            msg = one_line(e)
            fail(sweep.path, _spec_key_for(sweep, msg), msg)


def _spec_key_for(sweep: Sweep, message: str) -> str:
    """Where in the file the key a config error names was set (fixed.x, grid.x, readings)."""
    places = [(k, f"fixed.{k}") for k, _ in sweep.fixed] + [(k, f"grid.{k}") for k, _ in sweep.grid]
    places += [(k, f"readings.set.{k}") for r in sweep.readings for k, _ in r.overrides]
    for key, place in sorted(places, key=lambda p: -len(p[0])):  # optimizer.lr before optimizer
        if re.search(rf"(?<![\w.]){re.escape(key)}(?![\w.])", message) or \
                re.search(rf"'{re.escape(key.rsplit('.', 1)[-1])}'", message) and "." in key:
            return place
    return "fixed"
