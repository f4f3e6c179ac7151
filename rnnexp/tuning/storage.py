"""Optuna storage as rnnexp opens it: one spelling shared by the sweeper and its jobs, one-line
errors naming the URL, the schema race of workers starting on an empty database, and the repair of
a journal file whose tail a kill damaged."""
from __future__ import annotations

import json
import logging
import os
import time
from contextlib import contextmanager, nullcontext
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Optional

if TYPE_CHECKING:  # optuna is imported lazily: plain runs never pay for it
    import optuna

log = logging.getLogger(__name__)

MEMORY_STORAGE = "memory"
JOURNAL_STORAGE = "journal"  # the default journal file, results/studies/<study_name>.log
SCHEMA_RACE_ATTEMPTS = 5


class StorageError(ValueError):
    """An Optuna storage that cannot be opened."""


def resolve_storage(spec: str | None, default_path: str | Path) -> str:
    """The configured storage as the absolute form every process understands.

    None or "memory" -> in memory (hydra-optuna-sweeper's default); "journal" -> the default
    journal file `default_path` (rnnexp-train's default); a URL with "://" (sqlite:///...,
    postgresql://...) is an RDB URL, relative sqlite paths made absolute; anything else is a
    journal file path, made absolute (jobs may run in another working directory).
    """
    if spec is None or spec in (MEMORY_STORAGE, ":memory:"):
        return MEMORY_STORAGE
    if spec == JOURNAL_STORAGE:
        return str(Path(default_path).absolute())
    if spec.startswith("sqlite:///") and not spec.startswith("sqlite:////"):
        relative = spec[len("sqlite:///") :]
        if relative and relative != ":memory:":
            return "sqlite:///" + str(Path(relative).absolute())
    if "://" in spec:
        return spec
    return str(Path(spec).absolute())


def is_rdb_url(url: str) -> bool:
    """sqlite:///..., postgresql://..., mysql+pymysql://...: Optuna's RDB storage (SQLAlchemy)."""
    return "://" in url


def open_storage(url: str, *, heartbeat_interval: int | None = None,
                 grace_period: int | None = None,
                 stale_trial_callback: Any = None) -> "optuna.storages.BaseStorage":
    """Open a resolved storage (see resolve_storage); any failure is one line naming the URL.

    The heartbeat arguments go to RDBStorage (the sweeper's own storage; jobs need none).
    """
    import optuna

    try:
        if url == MEMORY_STORAGE:
            return optuna.storages.InMemoryStorage()
        if is_rdb_url(url):
            return _open_rdb(url, heartbeat_interval, grace_period, stale_trial_callback)
        return _open_journal_file(Path(url))
    except Exception as err:  # noqa: BLE001 - every cause gets the same one-line message
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise StorageError(f"cannot open Optuna storage {url!r}: {reason}") from err


def _open_rdb(url: str, heartbeat_interval: int | None, grace_period: int | None,
              stale_trial_callback: Any) -> "optuna.storages.RDBStorage":
    import warnings

    import optuna

    import sqlalchemy.exc

    # a server drops idle connections (MySQL's wait_timeout); test each one before use
    engine_kwargs = {} if url.startswith("sqlite") else {"pool_pre_ping": True}
    for attempt in range(1, SCHEMA_RACE_ATTEMPTS + 1):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeat
                return optuna.storages.RDBStorage(
                    url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat_interval,
                    grace_period=grace_period, heartbeat_stale_trial_callback=stale_trial_callback)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError,
                sqlalchemy.exc.OperationalError) as err:
            # workers started together on an empty database all create Optuna's tables: the
            # losers of that race find them there on the next try
            if attempt == SCHEMA_RACE_ATTEMPTS or not _lost_schema_race(err):
                raise
            time.sleep(0.2 * attempt)
    raise AssertionError("unreachable")


def _lost_schema_race(err: Exception) -> bool:
    text = str(err).lower()
    return "already exists" in text or "duplicate" in text


def _open_journal_file(path: Path) -> "optuna.storages.JournalStorage":
    from optuna.storages import JournalStorage

    path.parent.mkdir(parents=True, exist_ok=True)
    _repair_journal(path)
    return JournalStorage(flushed_journal_backend(str(path)))


def flushed_journal_backend(path: str):
    """Optuna's journal file backend, whose appends are flushed to the operating system but not
    fsynced. The file is the same (Optuna's CLI and optuna-dashboard read it), the same lock
    guards every append, and a killed process loses nothing it wrote (tests/reliability); an
    operating-system crash may lose the last records, which a resume runs again. An fsync costs
    milliseconds per record on this machine's disk, and a study writes about twenty records per
    trial: it would cost more than training the trial.

    `appending()` holds the lock across the appends of a block (a batch's parameters, a batch's
    outcomes): each append is still written and flushed at once, in the same order, but the lock
    (a symlink made and removed, two file-system operations) is taken once per block, not once
    per record."""
    from optuna.storages.journal import JournalFileBackend
    from optuna.storages.journal._file import get_lock_file

    class FlushedJournalFileBackend(JournalFileBackend):
        _held = False

        def read_logs(self, log_number_from: int) -> Iterator[dict[str, Any]]:
            # Optuna reads the file for new records before every read of the study (tens of
            # times a trial); where the file still ends where the last record read ended there
            # is nothing new, and one stat says so without opening it
            end = getattr(self, "_log_number_offset", {}).get(log_number_from)  # Optuna's own
            if end is not None:
                try:
                    if os.stat(self._file_path).st_size == end:
                        return iter(())
                except OSError:
                    pass  # the reader below reports it as Optuna does
            return super().read_logs(log_number_from)

        def append_logs(self, logs: list[dict[str, Any]]) -> None:
            text = "\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n"
            if self._held:
                self._append(text)
                return
            with get_lock_file(self._lock):
                self._append(text)

        def _append(self, text: str) -> None:
            with open(self._file_path, "ab") as f:
                f.write(text.encode("utf-8"))
                f.flush()

        @contextmanager
        def appending(self) -> Iterator[None]:
            if self._held:  # already held by an enclosing block
                yield
                return
            with get_lock_file(self._lock):
                self._held = True
                try:
                    yield
                finally:
                    self._held = False

    return FlushedJournalFileBackend(path)


def appending(storage: Any):
    """A block whose records a journal file appends under one taking of its lock (see
    flushed_journal_backend); a no-op for any other storage."""
    backend = getattr(storage, "_backend", None)
    return backend.appending() if hasattr(backend, "appending") else nullcontext()


JOURNAL_RECORD = b'{"op_code":'  # how every line Optuna's journal writes begins


def _is_record(line: bytes) -> bool:
    return line.startswith(JOURNAL_RECORD) and line.rstrip(b"\r").endswith(b"}")


def _repair_journal(path: Path) -> None:
    """Refuse a file that is no journal; cut off a damaged tail (a last line torn by a kill, or
    garbage after the last record) and keep it in <file>.damaged.

    The journal reader would refuse every line appended after a bad one, so the tail must go
    before anything is appended; damage between two good records cannot be repaired and is an error.
    Opening a sound journal takes no lock. A repair is made under Optuna's own journal lock, on the
    file as read after taking it, so a record another worker appends meanwhile is never cut off.
    """
    if not path.exists() or _damaged_tail(path.read_bytes()) is None:
        return
    from optuna.storages.journal import JournalFileSymlinkLock

    lock = JournalFileSymlinkLock(str(path))  # what JournalFileBackend locks its appends with
    lock.acquire()
    try:
        data = path.read_bytes()
        keep = _damaged_tail(data)
        if keep is None:
            return
        damaged = path.with_name(path.name + ".damaged")
        with open(damaged, "ab") as f:
            f.write(data[keep:])
        with open(path, "r+b") as f:
            f.truncate(keep)
    finally:
        lock.release()
    log.warning("Optuna journal %s: cut off %d bytes of damaged tail after its last whole record "
                "(kept in %s)", path, len(data) - keep, damaged)


def _damaged_tail(data: bytes) -> Optional[int]:
    """None for a sound journal, else the length of its sound part; raises for a file that is no
    journal or is damaged between good records."""
    if not data:
        return None
    *whole, torn = data.split(b"\n")  # torn: what follows the last newline (b"" if none)
    good = [_is_record(line) for line in whole]
    if not (good[0] if whole else torn.startswith(JOURNAL_RECORD)):
        raise ValueError("not an Optuna journal file (its first line is not a journal record); "
                         "name another file or an empty one")
    last_good = max((i for i, ok in enumerate(good) if ok), default=-1)
    bad = [i + 1 for i, ok in enumerate(good[:last_good + 1]) if not ok]
    if bad:
        raise ValueError(f"journal line {bad[0]} is damaged between good records; "
                         "it cannot be repaired automatically")
    keep = sum(len(line) + 1 for line in whole[:last_good + 1])
    return None if keep == len(data) else keep


@lru_cache(maxsize=8)
def storage_for_jobs(url: str) -> "optuna.storages.BaseStorage":
    # One storage object per process: a journal storage replays the file once, then only the tail.
    return open_storage(url)
