"""What a run leaves in its directory, written atomically so a kill never leaves half a file.

metrics.json is written last: its presence means the run finished.
"""
from __future__ import annotations

import json
import math
import os
import threading
from pathlib import Path

import numpy as np

METRICS = "metrics.json"
HISTORY = "history.csv"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary name beside `path` (unique to this process and thread), then rename:
    readers see the old file or the whole new one, never a part."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _json_safe(value):
    """NaN and inf are not JSON: they become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return _json_safe(value.item())
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
                      json.dumps(_json_safe(metrics), indent=1, ensure_ascii=False) + "\n")


def read_done(run_dir: Path):
    """metrics.json of a finished run, or None when the run is missing or was cut short."""
    try:
        metrics = json.loads((Path(run_dir) / METRICS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return metrics if isinstance(metrics, dict) and "status" in metrics else None
