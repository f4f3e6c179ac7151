"""Run dirs -> one tidy table, a row per run.

A run dir is any folder that holds one of a run's files (.hydra/, metrics.json, history.csv,
model.npz). Collection knows nothing of sweeps: a sweep's runs, another sweep's and a run made by
hand all land in the same table, described by their own config (.hydra/config.yaml, flattened to
dotted columns such as `model.hidden_size`) and their metrics (metrics.json). history.csv is read
on demand (`Collection.history`).

A run dir that is unfinished, half-written or damaged is never counted: it is named in
`Collection.problems` (and a RunDirWarning) with the reason, and left out.
"""
from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pandas as pd
import yaml

from rnnexp.results import HISTORY, METRICS, NotFinished, atomic_write_text
from rnnexp.results import read_metrics as read_finished_metrics
from rnnexp.sweeps import canonical, flatten

CONFIG = Path(".hydra") / "config.yaml"
RUN_FILES = (METRICS, HISTORY, "model.npz")
# metrics.json keys that repeat the config: the config columns already hold them
REPEATS_CONFIG = ("model", "hidden_size", "bias", "model_args", "optimizer", "optimizer_args",
                  "seed", "dtype", "epochs")
# config columns runs.csv always keeps, even where every run has the same value
IDENTITY_COLUMNS = ("word", "model.name", "optimizer.name", "train.epochs", "seed")


class RunDirWarning(UserWarning):
    """A run dir that was skipped because it is unfinished or damaged."""


class BadRunDir(ValueError):
    """Why a run dir cannot be counted (one line)."""


@dataclass(frozen=True)
class Problem:
    run_dir: str  # relative to the collection's base
    reason: str

    def __str__(self) -> str:
        return f"{self.run_dir}: {self.reason}"


@dataclass
class Collection:
    runs: pd.DataFrame  # one row per run: run_dir, config columns (dotted), metric columns
    problems: list[Problem]
    base: Path  # run_dir values are relative to this
    config_columns: list[str] = field(default_factory=list)
    _histories: dict = field(default_factory=dict, repr=False)

    def history(self, run_dir: str) -> pd.DataFrame:
        """history.csv of a run (epoch, loss, spelled, ...), read once and kept."""
        if run_dir not in self._histories:
            self._histories[run_dir] = read_history(self.base / run_dir)
        return self._histories[run_dir]


# ---------------------------------------------------------------- finding and reading run dirs

def find_run_dirs(root: Path) -> list[Path]:
    """Every folder under root (root included) that holds a run's file or a .hydra/ folder."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        if ".hydra" in dirnames or any(f in filenames for f in RUN_FILES):
            found.append(Path(dirpath))
        dirnames[:] = sorted(d for d in dirnames if d != ".hydra")
    return sorted(found)


def read_config(run_dir: Path) -> dict:
    path = run_dir / CONFIG
    if not path.is_file():
        raise BadRunDir("no .hydra/config.yaml (not a run of rnnexp-train, or cut short at start)")
    try:
        tree = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        raise BadRunDir(".hydra/config.yaml is not readable YAML") from None
    if not isinstance(tree, dict):
        raise BadRunDir(".hydra/config.yaml does not hold a config")
    return flatten(tree)


def read_metrics(run_dir: Path) -> dict:
    try:
        return read_finished_metrics(run_dir)
    except NotFinished as e:
        raise BadRunDir(str(e)) from None


def check_history(run_dir: Path, epochs_run: int) -> None:
    """Cheap check that history.csv is whole: its header, and a last line for the last epoch."""
    path = run_dir / HISTORY
    if not path.is_file():
        raise BadRunDir("no history.csv")
    size = path.stat().st_size
    if size == 0:
        raise BadRunDir("history.csv is empty")
    with open(path, "rb") as f:
        head = f.readline().decode("utf-8", "replace").strip()
        f.seek(max(0, size - 4096))
        tail = f.read().decode("utf-8", "replace").rstrip("\n").rsplit("\n", 1)[-1]
    if not head.startswith("epoch,loss"):
        raise BadRunDir("history.csv has no epoch,loss header")
    last = tail.split(",", 1)[0]
    if epochs_run == 0 and tail == head:
        return
    if last != str(epochs_run):
        raise BadRunDir(f"history.csv ends at epoch {last!r} but metrics.json says "
                        f"{epochs_run} epochs ran (truncated?)")


def read_history(run_dir: Path) -> pd.DataFrame:
    try:
        frame = pd.read_csv(Path(run_dir) / HISTORY)
    except (OSError, ValueError, pd.errors.ParserError) as e:
        raise BadRunDir(f"history.csv is not readable ({e.__class__.__name__})") from None
    if "epoch" not in frame or "loss" not in frame:
        raise BadRunDir("history.csv has no epoch and loss columns")
    return frame


def tidy_value(value):
    """A config value as a table cell: lists (betas) become their JSON text, the rest stays."""
    return canonical(value) if isinstance(value, (list, tuple)) else value


def read_run(run_dir: Path) -> dict:
    """One row: config columns (canonical values) and metric columns. Raises BadRunDir."""
    config = {k: tidy_value(v) for k, v in read_config(run_dir).items()}
    metrics = read_metrics(run_dir)
    check_history(run_dir, int(metrics["epochs_run"]))
    outcome = {k: v for k, v in metrics.items() if k not in REPEATS_CONFIG}
    outcome["text"] = outcome.pop("word", config.get("word"))  # the text trained on
    return {"config": config, "metrics": outcome}


# ---------------------------------------------------------------- the table

def collect(root: Path, base: Optional[Path] = None, warn: bool = True) -> Collection:
    """Every run dir under `root` as one DataFrame; run_dir is relative to `base` (default root)."""
    root = Path(root)
    base = Path(base) if base is not None else root
    rows, problems, config_keys = [], [], {}
    for run_dir in find_run_dirs(root) if root.exists() else []:
        name = _relative(run_dir, base)
        try:
            run = read_run(run_dir)
        except BadRunDir as e:
            problems.append(Problem(name, str(e)))
            if warn:
                warnings.warn(f"skipped run dir {name}: {e}", RunDirWarning, stacklevel=2)
            continue
        config_keys.update(dict.fromkeys(run["config"]))
        rows.append({"run_dir": name, **run["config"], **run["metrics"]})
    frame = pd.DataFrame(rows)
    if frame.empty:
        frame = pd.DataFrame(columns=["run_dir"])
    return Collection(frame, problems, base, [k for k in config_keys if k in frame])


def _relative(path: Path, base: Path) -> str:
    try:
        return path.resolve().relative_to(base.resolve()).as_posix() or "."
    except ValueError:
        return str(path)


def tidy_runs(collection: Collection) -> pd.DataFrame:
    """runs.csv: the run dir, every config value that varies (and the identity columns), every
    metric; sorted by run dir."""
    frame = collection.runs
    keep = []
    for col in collection.config_columns:
        varies = frame[col].map(lambda v: json.dumps(v, default=str)).nunique(dropna=False) > 1
        if varies or col in IDENTITY_COLUMNS:
            keep.append(col)
    metric_cols = [c for c in frame.columns if c != "run_dir" and c not in collection.config_columns]
    return frame[["run_dir", *keep, *metric_cols]].sort_values("run_dir").reset_index(drop=True)


def write_runs_csv(collection: Collection, path: Path) -> Path:
    atomic_write_text(Path(path), tidy_runs(collection).to_csv(index=False))
    return Path(path)
