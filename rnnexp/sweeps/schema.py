"""The schema of a table sweep file (rnnexp/configs/sweeps/tables/<name>.yaml), as structured
configs in Hydra's ConfigStore: a typo'd key or a wrong type fails at load, naming the key.

    title, section, order, note    how the table appears in REPORT.md
    fixed      rnnexp-train overrides every run of the table shares (key: value)
    grid       the keys the table varies (key: [values]); every grid key is one axis of the table
    readings   where the report contradicts itself, the alternative settings (each a name and a set
               of overrides, and how the loss was printed); every reading is run, and the table
               says which fits the published values
    ambiguity  the contradiction the readings resolve, in words
    seeds      how many seeds (0..seeds-1) every setting is run with
    table      the layout: rows and columns (a grid key, `epoch` or `metric`), the metric and the
               epoch it is read at, and whether to show what each setting spells
    published  the report's values, row by row, as printed (strings keep the printed precision)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


@dataclass
class AxisFile:
    key: Optional[str] = None  # a grid key, "epoch", "metric", or none for a single row/column
    values: Optional[List[Any]] = None  # default: the grid key's values
    labels: Optional[List[Any]] = None
    label: Optional[str] = None  # the axis' own header (default: the key)


@dataclass
class TableFile:
    rows: Optional[AxisFile] = None
    columns: Optional[AxisFile] = None
    metric: str = "loss"
    at_epoch: Optional[int] = None  # read the loss here; default: the last epoch
    generated: bool = False


@dataclass
class ReadingFile:
    name: str = MISSING
    set: Dict[str, Any] = MISSING
    note: str = ""
    # how the report printed the loss: "as trained", or "per step" (a model trained on the loss
    # summed over the time steps, its printed value divided by their number). A "per step" reading
    # may set what another reading sets: it reads that reading's runs, and nothing runs twice
    printed: str = "as trained"


@dataclass
class SweepFile:
    title: str = MISSING
    section: Optional[str] = None  # default: the title
    order: int = 1000
    note: str = ""
    fixed: Dict[str, Any] = MISSING
    grid: Dict[str, Any] = field(default_factory=dict)
    readings: Optional[List[ReadingFile]] = None
    ambiguity: str = ""
    seeds: int = 5
    table: TableFile = MISSING
    published: List[Any] = MISSING


REQUIRED = ("title", "fixed", "table", "published")


ConfigStore.instance().store(group="schema", name="sweep_file", node=SweepFile)
