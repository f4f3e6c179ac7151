"""One writer per results dir: rnnexp-reproduce, rnnexp-report and rnnexp-study hold an exclusive lock on
<results>/.lock while they train and write.

Two reproductions on one results dir would train the same run dirs at the same time and rewrite
the same tables and plots; every file is written atomically, so neither would be torn, but the
work is doubled and a report could mix both. The second one stops at once with a one-line error.
The lock is an fcntl.flock: the kernel drops it when its process dies (SIGKILL included), so a
killed reproduction never leaves a stale lock behind.
"""
from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from rnnexp.results.layout import Results

class ResultsBusy(ValueError):
    """Another process holds the results dir."""


HELD_ENV = "RNNEXP_RESULTS_LOCK_HELD"  # the lock file a parent holds for its child steps


@contextmanager
def lock_held_by_parent(results: Path) -> Iterator[None]:
    """Children started in this block (a step of rnnexp-reproduce run by rnnexp-study) work under
    this process's lock on the results dir instead of asking for it."""
    before = os.environ.get(HELD_ENV)
    os.environ[HELD_ENV] = str(Results(results).lock.resolve())
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(HELD_ENV, None)
        else:
            os.environ[HELD_ENV] = before


@contextmanager
def flocked(path: Path) -> Iterator[tuple[int, bool]]:
    """An exclusive, non-blocking flock on `path` (created if missing) for the block: (its open
    descriptor, whether this process got the lock); False at once where another process holds
    it. The kernel drops the lock with the descriptor, also when its holder dies."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            held = True
        except BlockingIOError:
            held = False
        yield fd, held
    finally:
        os.close(fd)  # closing the descriptor releases the lock


@contextmanager
def results_lock(results: Path, prog: str) -> Iterator[None]:
    """Hold <results>/.lock for the block; ResultsBusy (one line) when another process holds it,
    unless that is the parent that started this one for this very dir (lock_held_by_parent)."""
    path = Results(results).lock
    if os.environ.get(HELD_ENV) == str(path.resolve()) and os.getppid() > 1:
        yield
        return
    with flocked(path) as (fd, held):
        if not held:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "?"
            raise ResultsBusy(f"another rnnexp process (pid {holder}) is "
                              f"running on results dir {str(results)!r}; wait for it to finish"
                              ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {prog}\n".encode(), 0)
        yield
