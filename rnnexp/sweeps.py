"""Sweep files: sweeps/<name>.yaml, one per table of the report.

A sweep file is data. It names
  fixed     rnnexp-train overrides every run of the table shares (key: value),
  grid      the keys the table varies (key: [values]); every grid key is one axis of the table,
  readings  where the report contradicts itself, the alternative settings (each a name and a set of
            overrides); every reading is run and the table says which one fits the published values,
  seeds     how many seeds (0..seeds-1) every setting is run with,
  table     the layout: rows and columns (a grid key, `epoch` or `metric`), the metric and the epoch
            it is read at,
  published the report's values, row by row, as printed (strings keep the printed precision).

`load_sweep` checks all of it and raises SweepError with one line naming the file and the key.
The runs go through Hydra multirun of rnnexp-train (`Sweep.commands`), one run dir per job named by
its overrides (hydra.job.override_dirname), so a re-run finds and skips what is done.
"""
from __future__ import annotations

import copy
import itertools
import json
import math
import os
import re
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional

import yaml

ROOT = Path(__file__).resolve().parent.parent
SWEEPS_DIR = Path(os.environ.get("RNNEXP_SWEEPS_DIR") or ROOT / "sweeps")  # sweep files of your own
CONF_DIR = ROOT / "conf"

GROUPS = ("model", "optimizer")  # Hydra config groups: `model: numpy_rnn` is the column model.name
EPOCH, METRIC = "epoch", "metric"  # axis keys that are not config keys
METRICS = {  # what a table cell can show, and how it is printed in a header
    "loss": "loss", "final_loss": "final loss", "min_loss": "lowest loss",
    "epochs_to_converge": "epochs to converge",
}
QUICK_EPOCH_FACTOR = 10  # --quick trains a tenth of the epochs
QUICK_SEEDS = 2

_TOP_KEYS = {"title", "section", "order", "note", "fixed", "grid", "readings", "ambiguity", "seeds",
             "table", "published"}
_TABLE_KEYS = {"rows", "columns", "metric", "at_epoch", "generated"}
_AXIS_KEYS = {"key", "values", "labels", "label"}
_READING_KEYS = {"name", "set", "note"}
_RESERVED = {"seed", "hydra", "train.skip_done"}  # set by the runner, not by a sweep file


class SweepError(ValueError):
    """A sweep file that cannot be run; the message names the file and the key."""


# ---------------------------------------------------------------- the parsed file

@dataclass(frozen=True)
class Axis:
    """One axis of a table. key: a grid key, "epoch", "metric", or None for a single row/column."""

    key: Optional[str]
    values: tuple
    labels: tuple[str, ...]
    label: str  # the axis' own header, e.g. "hidden size"


@dataclass(frozen=True)
class Published:
    text: str  # as printed in the report, e.g. "0.00000"
    value: float
    floor: float  # half a unit of the last printed digit: "0.00000" means below 5e-6

    @classmethod
    def parse(cls, raw) -> "Published":
        text = str(raw).strip()
        value = float(text)
        decimals = len(text.split(".")[1]) if "." in text and "e" not in text.lower() else 0
        return cls(text, value, 0.5 * 10.0 ** (-decimals))


@dataclass(frozen=True)
class Reading:
    name: str
    overrides: tuple[tuple[str, Any], ...]  # (key, value), in file order
    note: str = ""


@dataclass(frozen=True)
class Layout:
    rows: Axis
    columns: Axis
    metric: str  # used where no axis is "metric"
    at_epoch: Optional[int]  # read the loss here; None: at the last epoch
    generated: bool  # show what each setting spells


@dataclass(frozen=True)
class Setting:
    """One cell family of a table: a reading and a value for every grid key (all seeds)."""

    reading: str
    grid: tuple[tuple[str, Any], ...]
    values: tuple[tuple[str, Any], ...]  # every key this setting sets: fixed, reading, grid
    overrides: tuple[str, ...]  # the same as rnnexp-train overrides (seed excluded)


@dataclass(frozen=True)
class Sweep:
    name: str
    path: Path
    title: str
    section: str
    order: int
    note: str
    fixed: tuple[tuple[str, Any], ...]
    grid: tuple[tuple[str, tuple], ...]
    readings: tuple[Reading, ...]  # at least one (a file without readings has one, "as stated")
    ambiguity: str
    seeds: int
    layout: Layout
    published: tuple[tuple[Published, ...], ...]  # (rows, columns)
    quick: bool = False

    @property
    def epochs(self) -> int:
        return int(dict(self.fixed)["train.epochs"])

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.seeds))

    @property
    def ambiguous(self) -> bool:
        return len(self.readings) > 1

    def with_seeds(self, seeds: int) -> "Sweep":
        return replace(self, seeds=int(seeds))

    def quick_version(self, seeds: Optional[int] = None) -> "Sweep":
        """A tenth of the epochs (epoch axes scaled alike) and fewer seeds: a first look."""
        scale = lambda e: max(1, round(e / QUICK_EPOCH_FACTOR))  # noqa: E731
        fixed = tuple((k, scale(v) if k == "train.epochs" else v) for k, v in self.fixed)

        def axis(a: Axis) -> Axis:
            if a.key != EPOCH:
                return a
            return replace(a, values=tuple(scale(v) for v in a.values),
                           labels=tuple(str(scale(v)) for v in a.values))

        layout = replace(self.layout, rows=axis(self.layout.rows), columns=axis(self.layout.columns),
                         at_epoch=None if self.layout.at_epoch is None else scale(self.layout.at_epoch))
        return replace(self, fixed=fixed, layout=layout, quick=True,
                       seeds=seeds if seeds is not None else min(self.seeds, QUICK_SEEDS))

    def sweep_dir(self, runs_root: Path) -> Path:
        """Where this sweep's run dirs go: runs/<name>, or runs/quick/<name> for --quick."""
        return Path(runs_root) / ("quick" if self.quick else "") / self.name

    # ------------------------------------------------------------ settings and commands

    def settings(self) -> list[Setting]:
        """Every (reading, grid point), readings outermost, grid in file order."""
        out = []
        for reading in self.readings:
            keys = [k for k, _ in self.grid]
            for point in itertools.product(*(values for _, values in self.grid)):
                grid = tuple(zip(keys, point))
                values = self.fixed + reading.overrides + grid
                out.append(Setting(reading.name, grid, values,
                                   tuple(override(k, v) for k, v in values)))
        return out

    def n_runs(self) -> int:
        return len(self.settings()) * self.seeds

    def commands(self, sweep_dir: Path, launcher: Optional[str] = None) -> list[list[str]]:
        """rnnexp-train arguments (after the program name) that run this sweep: one Hydra
        multirun per group of readings. Readings that form a full product of values (e.g. loss
        reduction x init) fold into one multirun; others (lr and betas that go together) get one
        multirun each. Run dirs are named by the overrides that vary, so re-runs find them."""
        excluded = sorted({k for k, _ in self.fixed} | {"train.skip_done"})
        tail = [f"seed={','.join(map(str, self.seed_list))}",
                f"hydra.sweep.dir={hydra_value(str(sweep_dir))}",
                "hydra.sweep.subdir=${hydra.job.override_dirname}",
                f"hydra.job.config.override_dirname.exclude_keys=[{','.join(excluded)}]",
                "train.skip_done=true"]
        if launcher:
            tail.append(f"hydra/launcher={launcher}")
        fixed = [override(k, v) for k, v in self.fixed]
        grid = [sweep_override(k, values) for k, values in self.grid]
        return [["-m", *fixed, *grid, *group, *tail] for group in _reading_groups(self.readings)]


def _reading_groups(readings: tuple[Reading, ...]) -> list[list[str]]:
    """Overrides for each multirun that covers the readings."""
    if len(readings) == 1:
        return [[override(k, v) for k, v in readings[0].overrides]]
    keys = [k for k, _ in readings[0].overrides]
    per_key = {k: [] for k in keys}
    for r in readings:
        for k, v in r.overrides:
            if canonical(v) not in map(canonical, per_key[k]):
                per_key[k].append(v)
    combos = {tuple(canonical(v) for _, v in r.overrides) for r in readings}
    if len(combos) == math.prod(len(v) for v in per_key.values()):  # a full product: one multirun
        return [[sweep_override(k, per_key[k]) for k in keys]]
    return [[override(k, v) for k, v in r.overrides] for r in readings]


# ---------------------------------------------------------------- Hydra override syntax

_BARE = re.compile(r"[A-Za-z_/.][A-Za-z0-9_./-]*\Z")  # words and paths need no quotes
_NOT_STRINGS = {"true", "false", "null", "inf", "nan"}


def hydra_value(v) -> str:
    """A Python value in Hydra's override grammar: strings quoted unless plain words."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(hydra_value(x) for x in v) + "]"
    s = str(v)
    if _BARE.match(s) and s.lower() not in _NOT_STRINGS and not _is_float(s):
        return s
    return '"' + s.replace('"', '\\"') + '"'  # Hydra needs only the quotes escaped


def _is_float(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def override(key: str, value) -> str:
    return f"{key}={hydra_value(value)}"


def sweep_override(key: str, values) -> str:
    return f"{key}={','.join(hydra_value(v) for v in values)}"


def canonical(value):
    """One comparable form for a config value from YAML, JSON, CSV or a sweep file:
    None/NaN -> None, numbers -> float, lists -> their JSON text."""
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return None if isinstance(value, float) and math.isnan(value) else float(value)
    if isinstance(value, (list, tuple)):
        return json.dumps([canonical(x) for x in value])
    if hasattr(value, "item"):  # NumPy scalars
        return canonical(value.item())
    return value


def config_column(key: str) -> str:
    """The config column a sweep key is found in: `model` -> model.name."""
    return f"{key}.name" if key in GROUPS else key


# ---------------------------------------------------------------- loading and checking

def _fail(path: Path, key: str, message: str):
    raise SweepError(f"{_show(path)}: {key}: {message}")


def _show(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _mapping(path, key, value, allowed=None) -> dict:
    if not isinstance(value, dict):
        _fail(path, key, f"must be a mapping, got {type(value).__name__}")
    if allowed is not None:
        unknown = sorted(set(value) - allowed)
        if unknown:
            _fail(path, f"{key}.{unknown[0]}" if key else unknown[0],
                  f"unknown key (allowed: {', '.join(sorted(allowed))})")
    return value


def _scalar_or_list(path, key, value):
    ok_scalar = lambda x: x is None or isinstance(x, (bool, int, float, str))  # noqa: E731
    if ok_scalar(value) or (isinstance(value, list) and all(ok_scalar(x) for x in value)):
        return value
    _fail(path, key, f"must be a number, string, boolean, null or list of them, got {value!r}")


def _check_override_key(path, where: str, key) -> str:
    if not isinstance(key, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", key):
        _fail(path, where, f"{key!r} is not a config key")
    if key in _RESERVED or key.startswith("hydra"):
        _fail(path, f"{where}.{key}", "is set by the runner, not by a sweep file")
    return key


def load_sweep(path: Path, check_config: bool = True) -> Sweep:
    """Read and check a sweep file; check_config also composes every setting with rnnexp-train's
    config (unknown keys, wrong types, values that cannot run)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise SweepError(f"{_show(path)}: cannot read ({e.strerror or e.__class__.__name__})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise SweepError(f"{_show(path)}: not valid YAML{where}") from None
    if not isinstance(raw, dict):
        _fail(path, "(top level)", "must be a mapping of sweep keys, got "
              f"{'an empty file' if raw is None else type(raw).__name__}")
    _mapping(path, "", raw, _TOP_KEYS)
    for key in ("title", "fixed", "table", "published"):
        if key not in raw:
            _fail(path, key, "missing")

    fixed = _mapping(path, "fixed", raw["fixed"])
    for k, v in fixed.items():
        _check_override_key(path, "fixed", k)
        _scalar_or_list(path, f"fixed.{k}", v)
    if "train.epochs" not in fixed:
        _fail(path, "fixed.train.epochs", "missing (every table names its epoch budget)")
    if not isinstance(fixed["train.epochs"], int) or isinstance(fixed["train.epochs"], bool) \
            or fixed["train.epochs"] < 1:
        _fail(path, "fixed.train.epochs", f"must be an integer >= 1, got {fixed['train.epochs']!r}")

    grid = _mapping(path, "grid", raw.get("grid") or {})
    for k, values in grid.items():
        _check_override_key(path, "grid", k)
        if k in GROUPS:
            _fail(path, f"grid.{k}", "config groups are chosen in fixed (one sweep per choice)")
        if k in fixed:
            _fail(path, f"grid.{k}", "is also in fixed")
        if not isinstance(values, list) or not values:
            _fail(path, f"grid.{k}", f"must be a non-empty list of values, got {values!r}")
        for v in values:
            _scalar_or_list(path, f"grid.{k}", v)
        if len({canonical(v) for v in values}) != len(values):
            _fail(path, f"grid.{k}", "has repeated values")

    readings = _parse_readings(path, raw.get("readings"), fixed, grid)
    seeds = raw.get("seeds", 5)
    if not isinstance(seeds, int) or isinstance(seeds, bool) or seeds < 1:
        _fail(path, "seeds", f"must be an integer >= 1, got {seeds!r}")
    order = raw.get("order", 1000)
    if not isinstance(order, int) or isinstance(order, bool):
        _fail(path, "order", f"must be an integer, got {order!r}")
    for key in ("title", "section", "note", "ambiguity"):
        if key in raw and not isinstance(raw[key], str):
            _fail(path, key, f"must be a string, got {raw[key]!r}")

    layout = _parse_layout(path, raw["table"], grid, fixed["train.epochs"])
    published = _parse_published(path, raw["published"], layout)
    sweep = Sweep(
        name=path.stem, path=path, title=raw["title"], section=raw.get("section", raw["title"]),
        order=order, note=raw.get("note", "").strip(), fixed=tuple(fixed.items()),
        grid=tuple((k, tuple(v)) for k, v in grid.items()), readings=readings,
        ambiguity=raw.get("ambiguity", "").strip(), seeds=seeds, layout=layout, published=published)
    if check_config:
        for setting in sweep.settings():
            _check_setting_config(sweep, setting)
    return sweep


def _parse_readings(path, raw, fixed: dict, grid: dict) -> tuple[Reading, ...]:
    if raw is None:
        return (Reading("as stated", ()),)
    if not isinstance(raw, list) or not raw:
        _fail(path, "readings", "must be a non-empty list of {name, set} entries")
    readings, names, keysets = [], set(), set()
    for i, r in enumerate(raw):
        where = f"readings[{i}]"
        r = _mapping(path, where, r, _READING_KEYS)
        if not isinstance(r.get("name"), str) or not r["name"].strip():
            _fail(path, f"{where}.name", "missing or not a string")
        if r["name"] in names:
            _fail(path, f"{where}.name", f"{r['name']!r} is used twice")
        names.add(r["name"])
        overrides = _mapping(path, f"{where}.set", r.get("set"))
        if not overrides:
            _fail(path, f"{where}.set", "missing or empty")
        for k, v in overrides.items():
            _check_override_key(path, f"{where}.set", k)
            if k in GROUPS:
                _fail(path, f"{where}.set.{k}", "config groups are chosen in fixed")
            if k in fixed or k in grid:
                _fail(path, f"{where}.set.{k}", "is also in fixed or grid")
            _scalar_or_list(path, f"{where}.set.{k}", v)
        keysets.add(frozenset(overrides))
        readings.append(Reading(r["name"], tuple(overrides.items()), str(r.get("note", ""))))
    if len(keysets) != 1:
        _fail(path, "readings", "every reading must set the same keys")
    if len({tuple(canonical(v) for _, v in r.overrides) for r in readings}) != len(readings):
        _fail(path, "readings", "two readings have the same values")
    return tuple(readings)


def _parse_axis(path, where: str, raw, grid: dict, epochs: int, metric: str) -> Axis:
    if raw is None:
        return Axis(None, (None,), (METRICS[metric],), "")
    raw = _mapping(path, where, raw, _AXIS_KEYS)
    key = raw.get("key")
    values = raw.get("values")
    if key is None:
        labels = raw.get("labels")
        if not isinstance(labels, list) or len(labels) != 1:
            _fail(path, f"{where}.labels", "an axis without a key has exactly one label")
        return Axis(None, (None,), (str(labels[0]),), str(raw.get("label", "")))
    if key == EPOCH:
        if not isinstance(values, list) or not values or not all(
                isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= epochs for v in values):
            _fail(path, f"{where}.values", f"epochs must be a list of integers in 1..{epochs}, got {values!r}")
    elif key == METRIC:
        if not isinstance(values, list) or not values or any(v not in METRICS for v in values):
            _fail(path, f"{where}.values", f"must list metrics out of {', '.join(METRICS)}, got {values!r}")
    elif key in grid:
        if values is None:
            values = list(grid[key])
        elif sorted(map(str, map(canonical, values))) != sorted(map(str, map(canonical, grid[key]))):
            _fail(path, f"{where}.values", f"must be the values of grid.{key}, got {values!r}")
    else:
        _fail(path, f"{where}.key", f"{key!r} is neither a grid key, '{EPOCH}' nor '{METRIC}'")
    labels = raw.get("labels")
    if labels is None:
        labels = [METRICS[v] if key == METRIC else str(v) for v in values]
    if not isinstance(labels, list) or len(labels) != len(values):
        _fail(path, f"{where}.labels", f"must be a list of {len(values)} labels")
    return Axis(key, tuple(values), tuple(str(x) for x in labels), str(raw.get("label", key)))


def _parse_layout(path, raw, grid: dict, epochs: int) -> Layout:
    raw = _mapping(path, "table", raw, _TABLE_KEYS)
    metric = raw.get("metric", "loss")
    if metric not in METRICS:
        _fail(path, "table.metric", f"must be one of {', '.join(METRICS)}, got {metric!r}")
    rows = _parse_axis(path, "table.rows", raw.get("rows"), grid, epochs, metric)
    columns = _parse_axis(path, "table.columns", raw.get("columns"), grid, epochs, metric)
    keys = [a.key for a in (rows, columns) if a.key is not None]
    if len(keys) != len(set(keys)):
        _fail(path, "table.columns.key", "rows and columns use the same key")
    missing = sorted(set(grid) - set(keys))
    if missing:
        _fail(path, "table", f"grid key {missing[0]} is neither the rows nor the columns")
    at_epoch = raw.get("at_epoch")
    if at_epoch is not None and (not isinstance(at_epoch, int) or not 1 <= at_epoch <= epochs):
        _fail(path, "table.at_epoch", f"must be an integer in 1..{epochs}, got {at_epoch!r}")
    if EPOCH in keys and (at_epoch is not None or METRIC in keys or metric != "loss"):
        _fail(path, "table", "an epoch axis reads the loss; it takes no at_epoch or other metric")
    generated = raw.get("generated", False)
    if not isinstance(generated, bool):
        _fail(path, "table.generated", f"must be true or false, got {generated!r}")
    return Layout(rows, columns, metric, at_epoch, generated)


def _parse_published(path, raw, layout: Layout) -> tuple[tuple[Published, ...], ...]:
    n_rows, n_cols = len(layout.rows.values), len(layout.columns.values)
    if not isinstance(raw, list):
        _fail(path, "published", "must be a list of rows")
    if n_cols == 1 and all(not isinstance(r, list) for r in raw):
        raw = [[r] for r in raw]  # a one-column table may list its values flat
    if len(raw) != n_rows or any(not isinstance(r, list) or len(r) != n_cols for r in raw):
        _fail(path, "published", f"must be {n_rows} rows of {n_cols} values (the table's layout)")
    out = []
    for i, row in enumerate(raw):
        cells = []
        for j, v in enumerate(row):
            try:
                cells.append(Published.parse(v))
            except (TypeError, ValueError):
                _fail(path, f"published[{i}][{j}]", f"not a number: {v!r}")
        out.append(tuple(cells))
    return tuple(out)


# ---------------------------------------------------------------- composing with rnnexp-train's config

@lru_cache(maxsize=None)
def _composed(choices: tuple[str, ...]):
    """rnnexp-train's config for these group choices (e.g. model=numpy_rnn), other keys default."""
    from hydra import compose, initialize_config_dir

    from rnnexp.config import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
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


def flatten(tree: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _check_setting_config(sweep: Sweep, setting: Setting) -> None:
    try:
        setting_config(setting)
    except Exception as e:  # noqa: BLE001 - any config failure becomes one line naming the key
        from rnnexp.cli import one_line
        msg = one_line(e)
        key = _spec_key_for(sweep, msg)
        raise SweepError(f"{_show(sweep.path)}: {key}: {msg}") from None


def _spec_key_for(sweep: Sweep, message: str) -> str:
    """Where in the file the key a config error names was set (fixed.x, grid.x, readings)."""
    places = [(k, f"fixed.{k}") for k, _ in sweep.fixed] + [(k, f"grid.{k}") for k, _ in sweep.grid]
    places += [(k, f"readings.set.{k}") for r in sweep.readings for k, _ in r.overrides]
    for key, place in sorted(places, key=lambda p: -len(p[0])):  # optimizer.lr before optimizer
        if re.search(rf"(?<![\w.]){re.escape(key)}(?![\w.])", message) or \
                re.search(rf"'{re.escape(key.rsplit('.', 1)[-1])}'", message) and "." in key:
            return place
    return "fixed"


def expected_configs(sweep: Sweep) -> list[tuple[Setting, dict]]:
    """Every setting with the full config its runs have (seed left out)."""
    return [(s, {k: v for k, v in flat_config(s).items() if k != "seed"}) for s in sweep.settings()]


# ---------------------------------------------------------------- all sweeps

def sweep_paths(sweeps_dir: Path = SWEEPS_DIR) -> list[Path]:
    """The table sweeps of a folder. A file with a Hydra `defaults:` list is a study config
    (rnnexp-train --config-dir sweeps --config-name <name>, e.g. fastest_convergence), not a
    sweep file."""
    return sorted(p for p in Path(sweeps_dir).glob("*.yaml") if not _is_hydra_config(p))


def _is_hydra_config(path: Path) -> bool:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return False  # load_sweep reports it with the file's name
    return isinstance(data, dict) and "defaults" in data


def load_sweeps(sweeps_dir: Path = SWEEPS_DIR, names: Optional[list[str]] = None,
                check_config: bool = True) -> list[Sweep]:
    """The sweeps of a folder in report order (their `order`, then name); `names` picks some."""
    paths = {p.stem: p for p in sweep_paths(sweeps_dir)}
    for n in names or []:
        if n not in paths:
            raise SweepError(f"unknown sweep {n!r}; available: {', '.join(sorted(paths))}")
    picked = [paths[n] for n in (names or sorted(paths))]
    return sorted((load_sweep(p, check_config) for p in picked), key=lambda s: (s.order, s.name))


__all__ = ["Axis", "Layout", "Published", "Reading", "Setting", "Sweep", "SweepError", "canonical",
           "config_column", "expected_configs", "flat_config", "setting_config", "flatten", "hydra_value",
           "load_sweep", "load_sweeps", "override", "sweep_paths", "SWEEPS_DIR"]
