"""Launches in a second process, so that a sweeper asks its next trials while a batch trains.

A sweeper's work between two launches (the sampler's asks, the storage's writes) and a launch (the
batch's configs, training and files) are both Python that holds the interpreter lock: in two
threads of one process they take turns (measured: slower than one after the other). In two
processes they use two cores.

`BackgroundLaunches(launcher)` forks the process once, when the sweep starts: the child is the
same launcher, already set up, and serves one launch at a time from a pipe. `submit` hands it a
batch and returns at once; `result` waits for its JobReturns. What crosses the pipe is small: the
jobs' override lines, then each job's status, return value (its metrics, or the exception of a
failed job) and overrides; the parent makes each JobReturn again around its own composer, so that
a sweeper reading a job's `cfg` or `hydra_cfg` gets them as from an in-process launch.

The child never touches the study: it trains and writes run files, as the launch would in
process. It ignores SIGINT (the sweeper decides what an interrupt stops and closes it), stops when
the sweeper's end of the pipe closes, and is killed with the sweeper where Linux allows
(PR_SET_PDEATHSIG), so that neither a Ctrl-C nor a SIGKILL leaves it behind.
"""
from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import pickle
import signal
import sys
from typing import Any, Optional, Sequence

from hydra.core.utils import JobReturn, JobRuntime, JobStatus

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


class TrainingProcessDied(RuntimeError):
    """The process that ran the launches ended without answering."""


def is_batched(launcher: Any) -> bool:
    """Whether `launcher` is the batched launcher (the sweeper merges and forks only for it)."""
    from .batched_launcher import BatchedLauncher

    return isinstance(launcher, BatchedLauncher)


def can_run_in_background(launcher: Any) -> Optional[str]:
    """None when `launcher` can launch in a forked process; else why not, in a few words."""
    if not is_batched(launcher) or launcher.composer is None:
        return "the launcher is not the batched launcher, set up"
    if not sys.platform.startswith("linux") or "fork" not in multiprocessing.get_all_start_methods():
        # macOS can fork, but its system libraries are not safe to use in a forked child
        return f"forking a launch is done on Linux only, not on {sys.platform}"
    if launcher.threads != 1:
        # OpenMP's thread pool does not survive fork: a child whose parent ever ran a parallel
        # region can hang in its first one. One thread never starts a parallel region.
        return f"hydra.launcher.threads={launcher.threads} (a forked launch needs 1)"
    return None


class BackgroundLaunches:
    """One forked process that runs `launcher.launch` for the batches submitted, one at a time."""

    def __init__(self, launcher: Any) -> None:
        ctx = multiprocessing.get_context("fork")
        self._launcher = launcher
        self._conn, child_end = ctx.Pipe()
        self._process = ctx.Process(target=_serve, args=(launcher, child_end, self._conn, os.getpid()),
                                    name="rnnexp-launches", daemon=True)
        self._process.start()
        child_end.close()
        self._pending: Optional[tuple[list[list[str]], int]] = None

    def submit(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> None:
        """Start launching this batch in the child; one batch at a time."""
        if self._pending is not None:
            raise RuntimeError("a batch is still launching: call result() first")
        batch = [list(job) for job in job_overrides]
        try:
            self._conn.send((batch, initial_job_idx))
        except (BrokenPipeError, ConnectionResetError, EOFError):
            raise self._died() from None
        self._pending = (batch, initial_job_idx)

    def result(self) -> list[JobReturn]:
        """The JobReturns of the submitted batch, in order, once the child has launched it."""
        if self._pending is None:
            raise RuntimeError("no batch was submitted")
        batch, first = self._pending
        try:
            kind, payload = self._conn.recv()
        except (EOFError, ConnectionResetError, OSError):
            self._pending = None
            raise self._died() from None
        self._pending = None
        if kind == "error":
            raise payload
        return [self._job_return(batch[i], first + i, *answer) for i, answer in enumerate(payload)]

    def close(self) -> None:
        """Stop the child at once. Between batches it holds nothing (each batch's files are
        written before its answer), and a batch still launching is abandoned with its trials,
        which the sweeper fails; a study with nothing left to run does not wait for the child's
        imports to finish."""
        if self._process is None:
            return
        process, self._process = self._process, None
        self._conn.close()
        process.terminate()
        process.join(timeout=5)
        if process.is_alive():
            process.kill()
            process.join()
        self._pending = None

    def _died(self) -> TrainingProcessDied:
        process = self._process
        if process is not None:
            process.join(timeout=5)
        code = process.exitcode if process is not None else None
        how = (f"killed by signal {-code}" if code is not None and code < 0
               else f"exit status {code}")
        return TrainingProcessDied(f"the process that trains the sweep's batches ended ({how})")

    def _job_return(self, overrides: list[str], idx: int, status: int, value: Any,
                    task_overrides: list[str]) -> JobReturn:
        from ._core import BatchedJobReturn

        ret = BatchedJobReturn(self._launcher.composer, overrides, idx, overrides=task_overrides,
                               working_dir=os.getcwd(), task_name=JobRuntime.instance().get("name"),
                               status=JobStatus(status))
        ret.return_value = value
        return ret


def _serve(launcher: Any, conn, parent_end, parent_pid: int) -> None:
    """The child: launch each batch received, answer with what its JobReturns carry."""
    parent_end.close()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the sweeper handles an interrupt
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the parent's handler raised KeyboardInterrupt
    _die_with_parent(parent_pid)
    _warm_up()
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            break
        batch, first = message
        try:
            returns = launcher.launch(batch, initial_job_idx=first)
            answer = ("ok", [_sendable(r) for r in returns])
        except Exception as err:  # noqa: BLE001 - the sweeper fails the batch's trials
            answer = ("error", _picklable(err))
        try:
            conn.send(answer)
        except (BrokenPipeError, ConnectionResetError, OSError):
            break
    conn.close()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # no atexit of the parent's (its journal, its loggers' files) runs here


def _warm_up() -> None:
    """Import what a launch needs (torch alone takes a second or more) while the sweeper opens
    its study and asks the first batch, instead of in the first launch."""
    import importlib

    for module in ("rnnexp.train", "rnnexp.engine.torch_stack", "rnnexp.engine.numpy_engine",
                   "rnnexp.results", "rnnexp.tuning.hooks"):
        try:
            importlib.import_module(module)
        except Exception:  # noqa: BLE001 - a launch that needs it reports the error itself
            pass


def _sendable(ret: JobReturn) -> tuple[int, Any, list[str]]:
    # JobReturn.return_value re-raises a failed job's exception; what crosses is the record
    return ret.status.value, _picklable(ret._return_value), list(ret.overrides or [])


def _picklable(value: Any) -> Any:
    try:
        pickle.dumps(value)
        return value
    except Exception:  # noqa: BLE001 - an exception with unpicklable state: keep its words
        if isinstance(value, BaseException):
            return RuntimeError(f"{type(value).__name__}: {value}")
        return repr(value)


def _die_with_parent(parent_pid: int) -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:  # the parent died before the call took effect
        os._exit(1)
