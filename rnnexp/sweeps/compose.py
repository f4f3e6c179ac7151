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
    return [(s, {k: v for k, v in flatten(tree).items() if k != "seed"})
            for s, tree in setting_trees(sweep)]


def check_settings(sweep: Sweep) -> None:
    """Every setting composes and passes rnnexp's checks; else one line naming the file's key."""
    from rnnexp.errors import one_line

    try:
        setting_trees(sweep)
    except Exception as e:  # noqa: BLE001 - any config failure becomes one line naming the key
        msg = one_line(e)
        fail(sweep.path, _spec_key_for(sweep, msg), msg)


def setting_trees(sweep: Sweep) -> list[tuple[Setting, dict]]:
    """(setting, its config as plain data) for every setting, checked as setting_config checks
    one: the keys and types once per distinct value on the typed config of each group choice
    (without a copy of the typed config per setting), then every setting's values by rnnexp's
    value checks."""
    from omegaconf import OmegaConf

    from rnnexp.config import plain, validate

    settings_all = sweep.settings()
    by_choices: dict[tuple, list[int]] = {}  # group choices -> indices into settings_all
    for i, setting in enumerate(settings_all):
        choices = tuple(override(k, v) for k, v in setting.values if k in GROUPS)
        by_choices.setdefault(choices, []).append(i)
    trees: list = [None] * len(settings_all)  # plain trees, yielded in settings order below
    for choices, indices in by_choices.items():
        settings = [settings_all[i] for i in indices]
        typed = copy.deepcopy(_composed(choices))
        converted = {}  # (key, repr(value)) -> the value as the typed config holds it
        for s in settings:
            for key, value in s.values:
                if key not in GROUPS and (key, repr(value)) not in converted:
                    OmegaConf.update(typed, key, value, merge=False)  # unknown key, type
                    node = OmegaConf.select(typed, key)
                    converted[key, repr(value)] = (OmegaConf.to_container(node)
                                                   if OmegaConf.is_config(node) else node)
        base = OmegaConf.to_container(_composed(choices), resolve=True)
        for i, setting in zip(indices, settings):
            tree = copy.deepcopy(base)
            for key, value in setting.values:
                if key not in GROUPS:
                    _set_dotted(tree, key, converted[key, repr(value)])
            validate(plain(tree))
            trees[i] = tree
    return list(zip(settings_all, trees))


def _set_dotted(tree: dict, key: str, value) -> None:
    *parents, last = key.split(".")
    for part in parents:
        tree = tree.setdefault(part, {})
    tree[last] = value


def _spec_key_for(sweep: Sweep, message: str) -> str:
    """Where in the file the key a config error names was set (fixed.x, grid.x, readings)."""
    places = [(k, f"fixed.{k}") for k, _ in sweep.fixed] + [(k, f"grid.{k}") for k, _ in sweep.grid]
    places += [(k, f"readings.set.{k}") for r in sweep.readings for k, _ in r.overrides]
    for key, place in sorted(places, key=lambda p: -len(p[0])):  # optimizer.lr before optimizer
        if re.search(rf"(?<![\w.]){re.escape(key)}(?![\w.])", message) or \
                re.search(rf"'{re.escape(key.rsplit('.', 1)[-1])}'", message) and "." in key:
            return place
    return "fixed"
