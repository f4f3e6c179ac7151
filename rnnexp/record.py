"""results/record.jsonl.gz: every run of the report's tables in one small committed file, so that
rnnexp-report rebuilds every table, plot and verdict of REPORT.md in a clone that has no run dirs.

One JSON line per run, sorted by run dir:

    {"run_dir": "runs/q1_lr/...", "config": {dotted key: value}, "metrics": {...},
     "history": {"epoch": [...], "loss": [...], "spelled": [...]}, "facts": {...}}

The config and metrics are a run's .hydra/config.yaml (flattened) and metrics.json, as collect()
reads them. The history keeps every epoch of a run of up to CURVE_POINTS epochs, and of a longer
one about CURVE_POINTS evenly spaced epochs plus every epoch a table reads: enough to draw its
curve and read its table. Losses keep DIGITS significant digits (the tables print three).
"facts" holds what a conclusion reads from a whole history (spelling_facts), worked out before
the history is thinned.

The report always works from the record: it first folds the run dirs it finds into it (a run dir
replaces its record entry; a record entry whose run dir is gone stays), then builds everything
from the record alone. A clone with run dirs and one without therefore write the same tables,
plots and REPORT.md.
"""
from __future__ import annotations

import gzip
import io
import json
import math
from pathlib import Path
from typing import Iterable, Optional

import numpy as np
import pandas as pd

from rnnexp.collect import Collection
from rnnexp.results import atomic_write_bytes, json_safe

RECORD = "record.jsonl.gz"
CURVE_POINTS = 200  # about this many epochs of a long run's history are kept
DIGITS = 7  # significant digits of a kept loss


class RecordError(ValueError):
    """A record file that cannot be read (one line)."""


def kept_epochs(epochs: np.ndarray, wanted: Iterable[int] = ()) -> np.ndarray:
    """Mask of the epochs a run's history keeps in the record: every epoch of a run of up to
    CURVE_POINTS epochs; of a longer one about CURVE_POINTS evenly spaced epochs (a curve drawn
    over them looks as one drawn over all), its first and last, and every epoch a table reads."""
    epochs = np.asarray(epochs, dtype=np.int64)
    if len(epochs) == 0 or epochs.max() <= CURVE_POINTS:
        return np.ones(len(epochs), bool)
    stride = int(epochs.max()) // CURVE_POINTS
    keep = (epochs % stride == 0) | np.isin(epochs, np.asarray(list(wanted), dtype=np.int64))
    keep[0] = keep[-1] = True
    return keep


def spelling_facts(loss: np.ndarray, spelled: np.ndarray) -> dict:
    """What the spelling conclusion reads from a whole history (the record keeps only part of a
    long one): whether the loss fell at an epoch where the string was wrong, and at how many
    epochs the string turned wrong although the loss fell."""
    loss, spelled = np.asarray(loss, float), np.asarray(spelled, bool)
    fell = np.diff(loss) < 0
    return {"fell_while_wrong": bool((fell & ~spelled[1:]).any()),
            "lost_while_falling": int((fell & spelled[:-1] & ~spelled[1:]).sum())}


def entry_of(collection: Collection, run_dir: str, wanted: Iterable[int] = ()) -> dict:
    """The record entry of one run of a collection (its history read from the collection)."""
    run = collection.raw[run_dir]
    h = collection.history(run_dir)
    epochs = h["epoch"].to_numpy(np.int64)
    keep = kept_epochs(epochs, wanted)
    loss = h["loss"].to_numpy(float)
    kept_loss = np.char.mod(f"%.{DIGITS}g", loss[keep]).astype(float)  # DIGITS significant
    history = {"epoch": epochs[keep].tolist(), "loss": json_safe(kept_loss.tolist())}
    facts = {}
    if "spelled" in h:
        spelled = h["spelled"].to_numpy(np.int64)
        history["spelled"] = spelled[keep].tolist()
        facts = spelling_facts(loss, spelled)
    # NaN and infinities as null: a run's metrics never need them
    return {"run_dir": run_dir, "config": json_safe(run["config"]),
            "metrics": json_safe(run["metrics"]), "history": history, "facts": facts}


def wanted_epochs(sweeps) -> set[int]:
    """Every epoch a table of these sweeps reads from a history."""
    from rnnexp.tables import cells_of

    return {int(epoch) for s in sweeps for *_, epoch in cells_of(s.layout, {}) if epoch is not None}


def _row_of(entry: dict) -> dict:
    return {"run_dir": entry["run_dir"], **entry["config"], **entry["metrics"]}


def read_entries(path: Path) -> list[dict]:
    """The record's entries ([] where there is no record yet)."""
    path = Path(path)
    if not path.exists():
        return []
    try:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            entries = [json.loads(line) for line in f if line.strip()]
    except (OSError, EOFError, ValueError) as e:
        raise RecordError(f"{path} is not a readable run record ({e.__class__.__name__}: {e}); "
                          "move it aside and run rnnexp-report again to rebuild it from the run "
                          "dirs") from None
    for e in entries:
        if not (isinstance(e, dict) and {"run_dir", "config", "metrics", "history"} <= set(e)):
            raise RecordError(f"{path} holds a line that is not a run entry")
    return entries


def write_entries(path: Path, entries: list[dict]) -> bool:
    """Write the record (sorted by run dir) if its content changed; whether it was written."""
    text = "".join(json.dumps(e, ensure_ascii=False, separators=(",", ":")) + "\n"
                   for e in sorted(entries, key=lambda e: e["run_dir"]))
    path = Path(path)
    try:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            if f.read() == text:
                return False
    except (OSError, EOFError, ValueError):
        pass
    buf = io.BytesIO()
    # mtime 0 and no file name: the same runs give the same bytes, so git sees no change
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
        gz.write(text.encode("utf-8"))
    atomic_write_bytes(path, buf.getvalue())
    return True


def fold_in(collection: Collection, entries: list[dict], wanted: Iterable[int] = ()) -> list[dict]:
    """The record's entries with the collection's runs folded in: a run dir's entry replaces the
    record's of the same name; record entries of run dirs that are gone stay."""
    wanted = list(wanted)
    existing = {e["run_dir"]: e for e in entries}
    found = {}
    for run_dir, run in collection.raw.items():
        entry = existing.get(run_dir)
        # the record's entry stands for the same run (a run trained again writes new metrics,
        # its wall time at least): its history is not read and formatted again
        same = entry is not None and _is_entry_of(entry, run, wanted)
        found[run_dir] = entry if same else entry_of(collection, run_dir, wanted)
    kept = [e for e in entries if e["run_dir"] not in found]
    return kept + list(found.values())


def _is_entry_of(entry: dict, run: dict, wanted: list[int]) -> bool:
    """entry records this very run (same config and metrics) with the epochs a new entry would
    keep."""
    if (entry.get("config") != json_safe(run["config"])
            or entry.get("metrics") != json_safe(run["metrics"])):
        return False
    ran = run["metrics"].get("epochs_run")
    if not isinstance(ran, int) or isinstance(ran, bool):
        return False
    epochs = np.arange(1, ran + 1)
    history = entry.get("history") or {}
    return history.get("epoch") == epochs[kept_epochs(epochs, wanted)].tolist()


def collection_of(entries: list[dict], base: Path, problems: Optional[list] = None) -> Collection:
    """A Collection that reads everything (runs and histories) from record entries."""
    entries = sorted(entries, key=lambda e: e["run_dir"])
    rows = [_row_of(e) for e in entries]
    config_keys: dict = {}
    for e in entries:
        config_keys.update(dict.fromkeys(e["config"]))
    frame = pd.DataFrame(rows) if rows else pd.DataFrame(columns=["run_dir"])
    histories = {}
    for e in entries:
        h = e["history"]
        data = {"epoch": np.asarray(h["epoch"], dtype=np.int64),
                "loss": np.asarray([math.nan if x is None else x for x in h["loss"]], dtype=float)}
        if "spelled" in h:
            data["spelled"] = np.asarray(h["spelled"], dtype=np.int64)
        histories[e["run_dir"]] = pd.DataFrame(data)
    raw = {e["run_dir"]: {"config": e["config"], "metrics": e["metrics"],
                          "facts": e.get("facts", {})} for e in entries}
    return Collection(frame, list(problems or []), Path(base),
                      [k for k in config_keys if k in frame], raw=raw, _histories=histories)
