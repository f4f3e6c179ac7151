"""Reading and checking table sweep files. The schema (rnnexp.sweeps.schema) checks keys and
types; the checks here are the ones a schema cannot state (a grid key is an axis of the table,
readings set the same keys, published values fit the layout, ...). Every failure is a SweepError
of one line naming the file and the key."""
from __future__ import annotations

import re
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Optional

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from rnnexp.configs import tables_dir
from rnnexp.sweeps.grammar import canonical
from rnnexp.sweeps.schema import REQUIRED, SweepFile
from rnnexp.sweeps.compose import check_settings
from rnnexp.sweeps.sweep import (EPOCH, GROUPS, METRIC, METRICS, PRINTED, Axis, Layout, Published,
                                 Reading, Sweep, SweepError, fail, shown)

RESERVED = {"seed", "hydra", "train.skip_done"}  # set by the runner, not by a sweep file


# ---------------------------------------------------------------- the file against its schema

def read_file(path: Path) -> dict:
    """The file's YAML checked against SweepFile, as plain data (defaults filled in)."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise SweepError(f"{shown(path)}: cannot read ({e.strerror or e.__class__.__name__})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise SweepError(f"{shown(path)}: not valid YAML{where}") from None
    if not isinstance(raw, dict):
        fail(path, "(top level)", "must be a mapping of sweep keys, got "
             f"{'an empty file' if raw is None else type(raw).__name__}")
    for key in REQUIRED:
        if key not in raw:
            fail(path, key, "missing")
    try:
        typed = OmegaConf.merge(OmegaConf.structured(SweepFile), raw)
        return OmegaConf.to_container(typed, resolve=False, throw_on_missing=True)
    except ConfigKeyError as e:
        fail(path, e.full_key or "?", f"unknown key (allowed: {', '.join(_allowed(e))})")
    except OmegaConfBaseException as e:
        fail(path, getattr(e, "full_key", None) or "?", str(e).strip().splitlines()[0])


def _allowed(e: ConfigKeyError) -> list[str]:
    node = getattr(e, "object_type", None)
    return sorted(f.name for f in fields(node)) if node is not None and is_dataclass(node) else []


# ---------------------------------------------------------------- what a schema cannot say

def _scalar_or_list(path, key, value):
    ok_scalar = lambda x: x is None or isinstance(x, (bool, int, float, str))  # noqa: E731
    if ok_scalar(value) or (isinstance(value, list) and all(ok_scalar(x) for x in value)):
        return value
    fail(path, key, f"must be a number, string, boolean, null or list of them, got {value!r}")


def _check_override_key(path, where: str, key) -> str:
    if not isinstance(key, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", key):
        fail(path, where, f"{key!r} is not a config key")
    if key in RESERVED or key.startswith("hydra"):
        fail(path, f"{where}.{key}", "is set by the runner, not by a sweep file")
    return key


def load_sweep(path: Path, check_config: bool = True) -> Sweep:
    """Read and check a sweep file; check_config also composes every setting with rnnexp-train's
    config (unknown keys, wrong types, values that cannot run)."""
    path = Path(path)
    raw = read_file(path)
    fixed = raw["fixed"]
    for k, v in fixed.items():
        _check_override_key(path, "fixed", k)
        _scalar_or_list(path, f"fixed.{k}", v)
    epochs = fixed.get("train.epochs")
    if epochs is None:
        fail(path, "fixed.train.epochs", "missing (every table names its epoch budget)")
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
        fail(path, "fixed.train.epochs", f"must be an integer >= 1, got {epochs!r}")

    grid = raw["grid"]
    for k, values in grid.items():
        _check_override_key(path, "grid", k)
        if k in GROUPS:
            fail(path, f"grid.{k}", "config groups are chosen in fixed (one sweep per choice)")
        if k in fixed:
            fail(path, f"grid.{k}", "is also in fixed")
        if not isinstance(values, list) or not values:
            fail(path, f"grid.{k}", f"must be a non-empty list of values, got {values!r}")
        for v in values:
            _scalar_or_list(path, f"grid.{k}", v)
        if len({canonical(v) for v in values}) != len(values):
            fail(path, f"grid.{k}", "has repeated values")

    readings = _parse_readings(path, raw["readings"], fixed, grid)
    if raw["seeds"] < 1:
        fail(path, "seeds", f"must be an integer >= 1, got {raw['seeds']!r}")
    layout = _parse_layout(path, raw["table"], grid, epochs)
    published = _parse_published(path, raw["published"], layout)
    sweep = Sweep(
        name=path.stem, path=path, title=raw["title"], section=raw["section"] or raw["title"],
        order=raw["order"], note=raw["note"].strip(), fixed=tuple(fixed.items()),
        grid=tuple((k, tuple(v)) for k, v in grid.items()), readings=readings,
        ambiguity=raw["ambiguity"].strip(), seeds=raw["seeds"], layout=layout, published=published)
    if check_config:
        check_settings(sweep)
    return sweep


def _parse_readings(path, raw, fixed: dict, grid: dict) -> tuple[Reading, ...]:
    if raw is None:
        return (Reading("as stated", ()),)
    if not raw:
        fail(path, "readings", "must be a non-empty list of {name, set} entries")
    readings, names, keysets = [], set(), set()
    for i, r in enumerate(raw):
        where = f"readings[{i}]"
        if not r["name"].strip():
            fail(path, f"{where}.name", "missing or not a string")
        if r["name"] in names:
            fail(path, f"{where}.name", f"{r['name']!r} is used twice")
        names.add(r["name"])
        overrides = r["set"]
        if not overrides:
            fail(path, f"{where}.set", "missing or empty")
        for k, v in overrides.items():
            _check_override_key(path, f"{where}.set", k)
            if k in GROUPS:
                fail(path, f"{where}.set.{k}", "config groups are chosen in fixed")
            if k in fixed or k in grid:
                fail(path, f"{where}.set.{k}", "is also in fixed or grid")
            _scalar_or_list(path, f"{where}.set.{k}", v)
        if r["printed"] not in PRINTED:
            fail(path, f"{where}.printed", f"{r['printed']!r} is not one of {list(PRINTED)}")
        keysets.add(frozenset(overrides))
        readings.append(Reading(r["name"], tuple(overrides.items()), r["note"], r["printed"]))
    if len(keysets) != 1:
        fail(path, "readings", "every reading must set the same keys")
    if len({(tuple(canonical(v) for _, v in r.overrides), r.printed)
            for r in readings}) != len(readings):
        fail(path, "readings", "two readings have the same values and print the loss alike")
    return tuple(readings)


def _parse_axis(path, where: str, raw: Optional[dict], grid: dict, epochs: int, metric: str) -> Axis:
    if raw is None:
        return Axis(None, (None,), (METRICS[metric],), "")
    key, values, labels = raw["key"], raw["values"], raw["labels"]
    if key is None:
        if not isinstance(labels, list) or len(labels) != 1:
            fail(path, f"{where}.labels", "an axis without a key has exactly one label")
        return Axis(None, (None,), (str(labels[0]),), raw["label"] or "")
    if key == EPOCH:
        if not values or not all(
                isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= epochs for v in values):
            fail(path, f"{where}.values", f"epochs must be a list of integers in 1..{epochs}, got {values!r}")
    elif key == METRIC:
        if not values or any(v not in METRICS for v in values):
            fail(path, f"{where}.values", f"must list metrics out of {', '.join(METRICS)}, got {values!r}")
    elif key in grid:
        if values is None:
            values = list(grid[key])
        elif sorted(map(str, map(canonical, values))) != sorted(map(str, map(canonical, grid[key]))):
            fail(path, f"{where}.values", f"must be the values of grid.{key}, got {values!r}")
    else:
        fail(path, f"{where}.key", f"{key!r} is neither a grid key, '{EPOCH}' nor '{METRIC}'")
    if labels is None:
        labels = [METRICS[v] if key == METRIC else str(v) for v in values]
    if len(labels) != len(values):
        fail(path, f"{where}.labels", f"must be a list of {len(values)} labels")
    return Axis(key, tuple(values), tuple(str(x) for x in labels),
                raw["label"] if raw["label"] is not None else key)


def _parse_layout(path, raw: dict, grid: dict, epochs: int) -> Layout:
    metric = raw["metric"]
    if metric not in METRICS:
        fail(path, "table.metric", f"must be one of {', '.join(METRICS)}, got {metric!r}")
    rows = _parse_axis(path, "table.rows", raw["rows"], grid, epochs, metric)
    columns = _parse_axis(path, "table.columns", raw["columns"], grid, epochs, metric)
    keys = [a.key for a in (rows, columns) if a.key is not None]
    if len(keys) != len(set(keys)):
        fail(path, "table.columns.key", "rows and columns use the same key")
    missing = sorted(set(grid) - set(keys))
    if missing:
        fail(path, "table", f"grid key {missing[0]} is neither the rows nor the columns")
    at_epoch = raw["at_epoch"]
    if at_epoch is not None and not 1 <= at_epoch <= epochs:
        fail(path, "table.at_epoch", f"must be an integer in 1..{epochs}, got {at_epoch!r}")
    if EPOCH in keys and (at_epoch is not None or METRIC in keys or metric != "loss"):
        fail(path, "table", "an epoch axis reads the loss; it takes no at_epoch or other metric")
    return Layout(rows, columns, metric, at_epoch, raw["generated"])


def _parse_published(path, raw: list, layout: Layout) -> tuple[tuple[Published, ...], ...]:
    n_rows, n_cols = len(layout.rows.values), len(layout.columns.values)
    if n_cols == 1 and all(not isinstance(r, list) for r in raw):
        raw = [[r] for r in raw]  # a one-column table may list its values flat
    if len(raw) != n_rows or any(not isinstance(r, list) or len(r) != n_cols for r in raw):
        fail(path, "published", f"must be {n_rows} rows of {n_cols} values (the table's layout)")
    out = []
    for i, row in enumerate(raw):
        cells = []
        for j, v in enumerate(row):
            try:
                cells.append(Published.parse(v))
            except (TypeError, ValueError):
                fail(path, f"published[{i}][{j}]", f"not a number: {v!r}")
        out.append(tuple(cells))
    return tuple(out)


# ---------------------------------------------------------------- all sweeps

def sweep_paths(sweeps_dir: Optional[Path] = None) -> list[Path]:
    """The table sweep files of a folder (default: the packaged tables, or $RNNEXP_SWEEPS_DIR)."""
    return sorted(Path(sweeps_dir or tables_dir()).glob("*.yaml"))


def load_sweeps(sweeps_dir: Optional[Path] = None, names: Optional[list[str]] = None,
                check_config: bool = True) -> list[Sweep]:
    """The sweeps of a folder in report order (their `order`, then name); `names` picks some."""
    paths = {p.stem: p for p in sweep_paths(sweeps_dir)}
    for n in names or []:
        if n not in paths:
            raise SweepError(f"unknown sweep {n!r}; available: {', '.join(sorted(paths))}")
    picked = [paths[n] for n in (names or sorted(paths))]
    return sorted((load_sweep(p, check_config) for p in picked), key=lambda s: (s.order, s.name))
