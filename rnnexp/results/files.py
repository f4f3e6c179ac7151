"""What a run leaves in its directory, written atomically so a kill never leaves half a file.

A run is finished when its metrics.json is whole (`read_done`): it is written last and
atomically, so its presence alone says so wherever only a count is needed (`count_finished`).
"""
from __future__ import annotations

import json
import math
import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

METRICS = "metrics.json"
HISTORY = "history.csv"
# what every finished run's metrics.json holds; a file without them is damaged
REQUIRED_METRICS = ("status", "epochs_run", "final_loss", "generated", "spells_word")


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary name beside `path` (unique to this process and thread, same suffix, so savefig
    still picks the format from it) to write to; renamed onto `path` when the block ends. Readers
    see the old file or the whole new one, never a part."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.{threading.get_ident()}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_if_changed(path: Path, text: str) -> bool:
    """Write `text` (atomically) unless the file holds it already; whether it was written. A
    figure drawn from a file need not be drawn again while the file stays the same."""
    path = Path(path)
    data = text.encode("utf-8")
    try:
        if path.read_bytes() == data:
            return False
    except OSError:
        pass
    atomic_write_bytes(path, data)
    return True


def json_safe(value, *, keep_nonfinite: bool = False):
    """Plain Python data that JSON and YAML can hold: NumPy scalars as Python numbers, tuples as
    lists, and NaN and inf as null (unless keep_nonfinite: YAML can write them)."""
    if isinstance(value, float) and not keep_nonfinite and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v, keep_nonfinite=keep_nonfinite) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v, keep_nonfinite=keep_nonfinite) for v in value]
    if isinstance(value, np.generic):
        return json_safe(value.item(), keep_nonfinite=keep_nonfinite)
    return value


def history_csv(loss: np.ndarray, spelled: np.ndarray) -> str:
    lines = ["epoch,loss,spelled"]
    lines += [f"{e},{l!r},{int(s)}" for e, (l, s) in enumerate(zip(loss.tolist(), spelled.tolist()), 1)]
    return "\n".join(lines) + "\n"


def write_run(run_dir: Path, metrics: dict, loss: np.ndarray, spelled: np.ndarray) -> None:
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / HISTORY, history_csv(loss, spelled))
    atomic_write_text(run_dir / METRICS,
                      json.dumps(json_safe(metrics), indent=1, ensure_ascii=False) + "\n")


class NotFinished(ValueError):
    """Why a run dir holds no finished run (one line)."""


def read_metrics(run_dir: Path) -> dict:
    """metrics.json of a finished run; NotFinished naming the reason otherwise."""
    path = Path(run_dir) / METRICS
    if not path.is_file():
        raise NotFinished("no metrics.json (unfinished or killed run)")
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        raise NotFinished("metrics.json is not valid JSON (truncated or damaged)") from None
    if not isinstance(metrics, dict):
        raise NotFinished("metrics.json does not hold a JSON object")
    missing = [k for k in REQUIRED_METRICS if k not in metrics]
    if missing:
        raise NotFinished(f"metrics.json lacks {', '.join(missing)}")
    return metrics


def read_done(run_dir: Path):
    """metrics.json of a finished run, or None when the run is missing, cut short or damaged."""
    try:
        return read_metrics(run_dir)
    except NotFinished:
        return None


def count_finished(root: Path, pattern: str = "*") -> int:
    """How many run dirs matching `pattern` under root hold a metrics.json (progress counts; the
    file is written last and atomically, so its presence is the finish). "**": every run dir at
    any depth, found by a walk that does not descend into run dirs (their .hydra holds no run):
    a stat per dir instead of a listing, about ten times faster than a glob on a study's 14000."""
    root = Path(root)
    if not root.is_dir():
        return 0
    if pattern == "**":
        return int((root / METRICS).exists()) + _count_below(str(root))
    return sum(1 for _ in root.glob(f"{pattern}/{METRICS}"))


def _count_below(path: str) -> int:
    n = 0
    try:
        entries = os.scandir(path)
    except OSError:
        return 0
    with entries:
        for entry in entries:
            if not entry.is_dir(follow_symlinks=False):
                continue
            if os.path.exists(os.path.join(entry.path, METRICS)):
                n += 1
            else:
                n += _count_below(entry.path)
    return n
