"""A table sweep as rnnexp runs and reports it: its settings, the rnnexp-train commands that run
them, and the table's layout with the report's published values."""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NoReturn, Optional

from rnnexp.sweeps.grammar import canonical, hydra_value, override, sweep_override

GROUPS = ("model", "optimizer")  # Hydra config groups: `model: numpy_rnn` is the column model.name
EPOCH, METRIC = "epoch", "metric"  # axis keys that are not config keys
METRICS = {  # what a table cell can show, and how it is printed in a header
    "loss": "loss", "final_loss": "final loss", "min_loss": "lowest loss",
    "epochs_to_converge": "epochs to converge",
}
QUICK_EPOCH_FACTOR = 10  # --quick trains a tenth of the epochs
QUICK_SEEDS = 2


class SweepError(ValueError):
    """A sweep file that cannot be run; the message names the file and the key."""


def fail(path: Path, key: str, message: str) -> NoReturn:
    raise SweepError(f"{shown(path)}: {key}: {message}")


def shown(path: Path) -> str:
    """The path as the user would type it: relative to the working directory where it can be."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


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


PRINTED = ("as trained", "per step")


@dataclass(frozen=True)
class Reading:
    name: str
    overrides: tuple[tuple[str, Any], ...]  # (key, value), in file order
    note: str = ""
    printed: str = "as trained"  # or "per step": the loss divided by the word's time steps

    def loss_scale(self, word: str) -> float:
        """What a run's loss is multiplied by to read as this reading prints it."""
        return 1.0 / max(1, len(word) - 1) if self.printed == "per step" else 1.0


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
        """Runs the sweep trains: readings that only print another's runs differently add none."""
        return len({tuple((k, canonical(v)) for k, v in s.values) for s in self.settings()}) * self.seeds

    def reading(self, name: str) -> Reading:
        return next(r for r in self.readings if r.name == name)

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
    """Overrides for each multirun that covers the readings (readings that set the same values,
    printed differently, run once)."""
    distinct: dict = {}
    for r in readings:
        distinct.setdefault(tuple(canonical(v) for _, v in r.overrides), r)
    readings = tuple(distinct.values())
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
