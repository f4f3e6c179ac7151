"""Trained weights in a run dir: model.npz, plain arrays only (loaded with allow_pickle=False).

Besides the parameters (under the model's own names) the file holds the vocabulary, a small JSON
header (model, its arguments, the word) and a SHA-256 digest over all of it, so a file that was
edited, truncated or written by something else is refused instead of generating nonsense.
"""
from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import numpy as np

from rnnexp.results import atomic_write_bytes

FILENAME = "model.npz"
FORMAT = "rnnexp-checkpoint/1"
_VOCAB, _META, _DIGEST = "__vocab__", "__meta__", "__sha256__"


class CheckpointError(ValueError):
    """A checkpoint that cannot be trusted or read."""


def _digest(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        h.update(key.encode())
        h.update(str(a.dtype).encode())
        h.update(repr(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def save(run_dir: Path, params: dict, vocab: tuple, meta: dict) -> Path:
    arrays = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    arrays[_VOCAB] = np.array(list(vocab), dtype=str)
    arrays[_META] = np.array(json.dumps({"format": FORMAT, **meta}, ensure_ascii=False))
    arrays[_DIGEST] = np.array(_digest(arrays))
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    path = Path(run_dir) / FILENAME
    atomic_write_bytes(path, buf.getvalue())
    return path


def load(path: Path) -> tuple[dict, tuple, dict]:
    """(params, vocab, meta) of a checkpoint file or of the run dir that holds one."""
    path = Path(path)
    if path.is_dir():
        path = path / FILENAME
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {str(path)!r} (was the run made with train.checkpoint=false?)")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise CheckpointError(f"{str(path)!r} is not a readable rnnexp checkpoint ({e.__class__.__name__})") from None
    if not {_VOCAB, _META, _DIGEST} <= arrays.keys():
        raise CheckpointError(f"{str(path)!r} is not an rnnexp checkpoint (no vocabulary, header or digest)")
    stored = str(arrays.pop(_DIGEST))
    if _digest(arrays) != stored:
        raise CheckpointError(f"{str(path)!r} does not match its digest: it was modified or is damaged")
    meta = json.loads(str(arrays.pop(_META)))
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{str(path)!r} has unknown format {meta.get('format')!r}")
    vocab = tuple(str(c) for c in arrays.pop(_VOCAB).tolist())
    return arrays, vocab, meta
