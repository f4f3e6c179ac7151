"""Run dirs -> one tidy table, a row per run.

A run dir is any folder that holds one of a run's files (.hydra/, metrics.json, history.csv,
model.npz). Collection knows nothing of sweeps: a sweep's runs, another sweep's and a run made by
hand all land in the same table, described by their own config (.hydra/config.yaml, flattened to
dotted columns such as `model.hidden_size`) and their metrics (metrics.json). history.csv is read
on demand (`Collection.history`).

A run dir that is unfinished, half-written or damaged is never counted: it is named in
`Collection.problems` (and a RunDirWarning) with the reason, and left out.

A RunCache (optional, rnnexp-report keeps one under the results dir) remembers what was read from
each run dir and its history.csv, keyed by the stat of the files read (type, inode, size, mtime,
ctime): a run dir whose files are unchanged is not parsed again, one that changed (re-trained,
damaged, repaired) is. The cache is plain JSON and a NumPy .npz without pickles.
"""
from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
import yaml

from rnnexp.results import (HISTORY, METRICS, NotFinished, atomic_path, atomic_write_text,
                            write_if_changed)
from rnnexp.results import read_metrics as read_finished_metrics
from rnnexp.sweeps import canonical, flatten

CONFIG = Path(".hydra") / "config.yaml"
RUN_FILES = (METRICS, HISTORY, "model.npz")
# metrics.json keys that repeat the config: the config columns already hold them
REPEATS_CONFIG = ("model", "hidden_size", "bias", "model_args", "optimizer", "optimizer_args",
                  "seed", "dtype", "epochs")
# config columns runs.csv always keeps, even where every run has the same value
IDENTITY_COLUMNS = ("word", "model.name", "optimizer.name", "train.epochs", "seed")
# the files read_run reads: a run dir is read again when the stat of any of them changes
READ_FILES = (str(CONFIG), METRICS, HISTORY)
# libyaml's loader where PyYAML has it (the same data as SafeLoader, several times faster)
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


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
    # run dir -> {"config", "metrics"} as read (the values before pandas typed them as columns)
    raw: dict = field(default_factory=dict, repr=False)
    _histories: dict = field(default_factory=dict, repr=False)
    _cache: Optional["RunCache"] = field(default=None, repr=False)
    _memo: dict = field(default_factory=dict, repr=False)  # derived data (rnnexp.tables' index)

    def history(self, run_dir: str) -> pd.DataFrame:
        """history.csv of a run (epoch, loss, spelled, ...), read once and kept."""
        if run_dir not in self._histories:
            frame = self._cache.history(run_dir) if self._cache is not None else None
            if frame is None:
                frame = read_history(self.base / run_dir)
                if self._cache is not None:
                    self._cache.keep_history(run_dir, frame)
            self._histories[run_dir] = frame
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
        tree = yaml.load(path.read_text(encoding="utf-8"), Loader=YAML_LOADER)
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

def collect(root: Path, base: Optional[Path] = None, warn: bool = True,
            cache: Optional["RunCache"] = None) -> Collection:
    """Every run dir under `root` as one DataFrame; run_dir is relative to `base` (default root).
    With a RunCache, run dirs whose files did not change since it was saved are not read again
    (the caller saves it: `cache.save()`, once the histories it needs are read)."""
    root = Path(root)
    base = Path(base) if base is not None else root
    rows, problems, config_keys, raw = [], [], {}, {}
    root_real = root.resolve()
    base_real = base.resolve()
    if cache is not None:
        cache.begin(root_real)
    for run_dir in find_run_dirs(root) if root.exists() else []:
        name = _relative(run_dir, base, root, root_real, base_real)
        try:
            if cache is not None:
                run = cache.read_run(run_dir, root, name)
            else:
                run = read_run(run_dir)
        except BadRunDir as e:
            problems.append(Problem(name, str(e)))
            if warn:
                warnings.warn(f"skipped run dir {name}: {e}", RunDirWarning, stacklevel=2)
            continue
        config_keys.update(dict.fromkeys(run["config"]))
        rows.append({"run_dir": name, **run["config"], **run["metrics"]})
        raw[name] = run
    frame = pd.DataFrame(rows)
    if frame.empty:
        frame = pd.DataFrame(columns=["run_dir"])
    return Collection(frame, problems, base, [k for k in config_keys if k in frame], raw=raw,
                      _cache=cache)


def _relative(path: Path, base: Path, root: Optional[Path] = None, root_real: Optional[Path] = None,
              base_real: Optional[Path] = None) -> str:
    """path relative to base, both resolved. A dir found by walking `root` (symlinks are not
    followed) resolves to root's own resolved path joined with its part under root, which spares
    resolving every run dir."""
    try:
        if root is not None and root_real is not None and base_real is not None:
            real = root_real.joinpath(path.relative_to(root)) if path != root else root_real
            return real.relative_to(base_real).as_posix() or "."
        return path.resolve().relative_to(base.resolve()).as_posix() or "."
    except ValueError:
        return str(path)


def tidy_runs(collection: Collection) -> pd.DataFrame:
    """runs.csv: the run dir, every config value that varies (and the identity columns), every
    metric; sorted by run dir."""
    frame = collection.runs
    keep = []
    for col in collection.config_columns:
        varies = len({json.dumps(v, default=str) for v in frame[col].tolist()}) > 1
        if varies or col in IDENTITY_COLUMNS:
            keep.append(col)
    metric_cols = [c for c in frame.columns if c != "run_dir" and c not in collection.config_columns]
    return frame[["run_dir", *keep, *metric_cols]].sort_values("run_dir").reset_index(drop=True)


def write_runs_csv(collection: Collection, path: Path) -> Path:
    write_if_changed(Path(path), tidy_runs(collection).to_csv(index=False))
    return Path(path)


# ---------------------------------------------------------------- remembering what was read

CACHE_VERSION = 1
CACHE_INDEX = "collect.json"  # run dir -> stat of its files, its row or why it was skipped
CACHE_HISTORIES = "histories.npz"  # the parsed history.csv files, column by column
_HISTORY_KINDS = "iufb"  # dtypes a history column may have to be kept (numbers and booleans)


def _stat(path: Path) -> Optional[list]:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_mode, st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _plain(value) -> bool:
    """A value that JSON reads back as itself (type included)."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return True
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return False


def _narrowed(a: np.ndarray) -> np.ndarray:
    """Integers in the smallest dtype that holds them (read back with astype of the original
    dtype, which the index keeps): epochs and 0/1 columns take a fraction of int64's room."""
    if a.dtype.kind not in "iu" or not len(a):
        return a
    for dtype in (np.int8, np.int16, np.int32):
        info = np.iinfo(dtype)
        if info.min <= a.min() and a.max() <= info.max:
            return a.astype(dtype)
    return a


class RunCache:
    """What collect() read from each run dir, kept in a folder between reports.

    A run dir is read again unless the stat (type, inode, device, size, mtime, ctime) of every
    file read_run reads is what it was; history.csv likewise. Entries of run dirs that are gone
    are dropped on save. A cache that cannot be read is ignored (everything is read again)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self._root: Optional[str] = None
        self._runs: dict = {}  # key (posix path under root) -> {"sig", "row"|"problem"}
        self._hist_index: dict = {}  # key -> {"sig", "group", "start", "stop"}
        self._hist_groups: list = []  # [{"columns", "dtypes"}], arrays g{i}c{j} in the .npz
        self._hist_arrays: Optional[dict] = None  # loaded on first use
        self._seen: dict = {}  # key -> sig of this collect
        self._names: dict = {}  # run dir name (as in the Collection) -> (key, history sig)
        self._new_histories: dict = {}  # key -> (sig, frame) read this time
        self._token: Optional[str] = None
        self._dirty = False
        self._load()

    # ---- reading the folder
    def _load(self) -> None:
        try:
            index = json.loads((self.folder / CACHE_INDEX).read_text(encoding="utf-8"))
            if index.get("version") != CACHE_VERSION:
                return
            self._root, self._runs, self._token = index["root"], index["runs"], index["token"]
            self._hist_index, self._hist_groups = index["histories"], index["groups"]
            if not (isinstance(self._runs, dict) and isinstance(self._hist_index, dict)
                    and isinstance(self._hist_groups, list)):
                raise TypeError
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            self._root, self._runs, self._hist_index, self._hist_groups = None, {}, {}, []

    def _arrays(self) -> dict:
        if self._hist_arrays is None:
            self._hist_arrays = {}
            if self._hist_index:
                try:
                    with np.load(self.folder / CACHE_HISTORIES, allow_pickle=False) as z:
                        arrays = {k: z[k] for k in z.files}
                    if arrays.pop("token").tobytes().decode("ascii") != self._token:
                        raise ValueError("histories of another index")
                    self._hist_arrays = arrays
                except Exception:  # noqa: BLE001 - a damaged cache is only a slower report
                    self._hist_index = {}
        return self._hist_arrays

    # ---- during collect
    def begin(self, root_real: Path) -> None:
        if self._root != str(root_real):  # another tree: nothing cached applies
            self._runs, self._hist_index, self._hist_groups = {}, {}, []
            self._hist_arrays = {}
            self._dirty = self._dirty or self._root is not None
            self._root = str(root_real)
        self._seen, self._names = {}, {}

    def read_run(self, run_dir: Path, root: Path, name: str) -> dict:
        """read_run(run_dir), or what it returned (or raised) last time if no file changed."""
        key = run_dir.relative_to(root).as_posix() if run_dir != root else "."
        sig = [_stat(run_dir / f) for f in READ_FILES]
        self._seen[key] = sig
        hit = self._runs.get(key)
        if isinstance(hit, dict) and hit.get("sig") == sig and ("problem" in hit or "row" in hit):
            if "problem" in hit:
                raise BadRunDir(hit["problem"])
            self._names[name] = (key, sig[2])
            return hit["row"]
        try:
            run = read_run(run_dir)
        except BadRunDir as e:
            self._runs[key] = {"sig": sig, "problem": str(e)}
            self._dirty = True
            raise
        if _plain(run):
            self._runs[key] = {"sig": sig, "row": run}
            self._dirty = True
        else:
            self._runs.pop(key, None)
        self._names[name] = (key, sig[2])
        return run

    # ---- histories
    def history(self, name: str) -> Optional[pd.DataFrame]:
        """The kept history.csv of a run dir of this collection, if it did not change."""
        key, sig = self._names.get(name, (None, None))
        entry = self._hist_index.get(key) if key is not None else None
        if not isinstance(entry, dict) or entry.get("sig") != sig or sig is None:
            return None
        arrays = self._arrays()
        try:
            group = self._hist_groups[entry["group"]]
            start, stop = entry["start"], entry["stop"]
            data = {c: arrays[f"g{entry['group']}c{j}"][start:stop].astype(dtype, copy=False)
                    for j, (c, dtype) in enumerate(zip(group["columns"], group["dtypes"]))}
        except (KeyError, IndexError, TypeError, AttributeError):
            return None
        return pd.DataFrame(data)

    def keep_history(self, name: str, frame: pd.DataFrame) -> None:
        key, sig = self._names.get(name, (None, None))
        if key is None or sig is None:
            return
        if not (isinstance(frame.index, pd.RangeIndex) and frame.index.start == 0
                and frame.index.step == 1 and frame.columns.is_unique
                and all(isinstance(c, str) for c in frame.columns)
                and all(dt.kind in _HISTORY_KINDS for dt in frame.dtypes)):
            return
        self._new_histories[key] = (sig, frame)
        self._dirty = True

    # ---- writing the folder
    def save(self) -> None:
        """Write the folder if anything changed: the run dirs of the last collect, their
        histories (kept ones and those read this time)."""
        gone = set(self._runs) - set(self._seen)
        gone_hist = {k for k, e in self._hist_index.items()
                     if k not in self._seen or self._seen[k][2] != e.get("sig")}
        if not (self._dirty or gone or gone_hist):
            return
        runs = {k: v for k, v in self._runs.items() if k in self._seen}
        frames = {}  # key -> (sig, columns, arrays): the still valid ones, then this run's
        arrays = self._arrays() if set(self._hist_index) - gone_hist else {}
        for key, entry in self._hist_index.items():
            if key in gone_hist or key in self._new_histories:
                continue
            try:
                group = self._hist_groups[entry["group"]]
                cols = [arrays[f"g{entry['group']}c{j}"][entry["start"]:entry["stop"]].astype(dtype)
                        for j, dtype in enumerate(group["dtypes"])]
            except (KeyError, IndexError, TypeError):
                continue
            frames[key] = (entry["sig"], tuple(group["columns"]), cols)
        for key, (sig, frame) in self._new_histories.items():
            if key in self._seen and self._seen[key][2] == sig:
                frames[key] = (sig, tuple(frame.columns),
                               [frame[c].to_numpy() for c in frame.columns])
        groups, parts, sizes, index, group_of = [], [], [], {}, {}
        for key in sorted(frames):
            sig, columns, cols = frames[key]
            if not cols:
                continue
            layout = (columns, tuple(c.dtype.str for c in cols))
            if layout not in group_of:
                group_of[layout] = len(groups)
                groups.append({"columns": list(columns), "dtypes": list(layout[1])})
                parts.append([[] for _ in columns])
                sizes.append(0)
            g = group_of[layout]
            for j, c in enumerate(cols):
                parts[g][j].append(c)
            index[key] = {"sig": sig, "group": g, "start": sizes[g],
                          "stop": sizes[g] + len(cols[0])}
            sizes[g] += len(cols[0])
        token = os.urandom(16).hex()  # ties the index to this .npz (written first)
        arrays_out = {f"g{g}c{j}": _narrowed(np.concatenate(col))
                      for g, cols in enumerate(parts) for j, col in enumerate(cols)}
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with atomic_path(self.folder / CACHE_HISTORIES) as tmp:
                with open(tmp, "wb") as f:
                    np.savez(f, token=np.frombuffer(token.encode("ascii"), np.uint8), **arrays_out)
            atomic_write_text(self.folder / CACHE_INDEX, json.dumps(
                {"version": CACHE_VERSION, "root": self._root, "token": token, "runs": runs,
                 "histories": index, "groups": groups}, separators=(",", ":")))
        except OSError:
            return  # a cache that cannot be written only costs time next run
        self._runs, self._hist_index, self._hist_groups = runs, index, groups
        self._hist_arrays, self._new_histories, self._dirty = arrays_out, {}, False
        self._token = token
