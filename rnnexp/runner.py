"""One way to run a step of rnnexp-reproduce or rnnexp-study: rnnexp-train with one environment,
its output in a log file, progress callbacks while it trains, stopped when the orchestrator is
interrupted. In a child process (`run_train`, `run_module`), or in this process (`Runner` with
in_process=True): the same Hydra app, its compose and launch, without a new interpreter's start-up
(seconds: torch, Hydra and Optuna imported again) for every step.

    STOP                a threading.Event: set it and every running child is terminated, its
                        caller gets KeyboardInterrupt; finished runs stay, the step resumes
    Runner              how a series of steps runs: launcher, in process or not, progress, stop
    Step, StepOutcome   what the orchestrator (rnnexp.reproduce) runs and what it counts
"""
from __future__ import annotations

import importlib.util
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional, Protocol, Sequence

POLL_S = 0.5  # how often a running child is checked for a stop and for progress
STOP = threading.Event()  # set when the orchestration is interrupted: every step stops its child
TRAIN_MODULE = "rnnexp.cli.train"


class StepFailed(RuntimeError):
    """rnnexp-train exited non-zero; the message holds its log's most telling line."""


@dataclass
class StepOutcome:
    trained: int = 0
    done_before: int = 0
    failures: list[str] = field(default_factory=list)

    def add(self, other: "StepOutcome") -> None:
        self.trained += other.trained
        self.done_before += other.done_before
        self.failures += other.failures


class Step(Protocol):
    name: str

    def planned_runs(self) -> int: ...

    def done_runs(self) -> int: ...

    def run(self, launcher: str, advance: Callable[..., None]) -> StepOutcome:
        """Run what is missing; advance(n, note=None) as n more runs finish (note: a line on
        how the step goes, for the progress bar)."""


def default_launcher() -> str:
    """The batched launcher where installed (one stacked computation per batch), else basic."""
    found = importlib.util.find_spec("hydra_plugins.rnnexp_batched_launcher") is not None
    return "batched" if found else "basic"


def resolve_launcher(asked: Optional[str]) -> str:
    """The launcher asked for (--launcher), else the default; a one-line error when batched is
    asked for and not installed."""
    if asked == "batched" and default_launcher() != "batched":
        raise ValueError("--launcher batched: hydra/launcher=batched is not installed; use "
                         "--launcher basic")
    return asked or default_launcher()


def child_env(launcher: str) -> dict[str, str]:
    """The environment of every rnnexp-train child."""
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}  # one-line errors
    env.setdefault("PYTHONUNBUFFERED", "1")  # the log follows the run
    if launcher == "basic":
        # one small model at a time, a few hundred numbers: torch's intra-op threads only contend
        # (benchmarks/launcher_bench.py measures it); the batched launcher sets its own
        # (hydra.launcher.threads, default 1)
        env.setdefault("OMP_NUM_THREADS", "1")
    return env


def run_train(args: Sequence[str], log_path: Path, launcher: str,
              on_poll: Optional[Callable[[], None]] = None, stop: threading.Event = STOP) -> None:
    """rnnexp-train `args` in a child process, its output appended to log_path; on_poll is called
    every POLL_S while it runs and once after. When `stop` is set or this process is interrupted,
    the child is terminated and KeyboardInterrupt raised. StepFailed when it exits non-zero."""
    run_module(TRAIN_MODULE, "rnnexp-train", args, log_path, launcher, on_poll, stop)


def run_module(module: str, prog: str, args: Sequence[str], log_path: Path, launcher: str,
               on_poll: Optional[Callable[[], None]] = None, stop: threading.Event = STOP) -> None:
    """`python -m module args` (the console script `prog`) in a child process, as run_train."""
    start_module(module, prog, args, log_path, launcher).wait(on_poll, stop)


def start_module(module: str, prog: str, args: Sequence[str], log_path: Path,
                 launcher: str) -> "Child":
    """`python -m module args` started in the background, its output appended to log_path."""
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"$ {shlex.join([prog, *args])}\n")
        log.flush()
        proc = subprocess.Popen([sys.executable, "-m", module, *args], stdout=log,
                                stderr=subprocess.STDOUT, env=child_env(launcher))
    return Child(proc, log_path)


@contextmanager
def interrupts_held(
        signums: Sequence[int] = (signal.SIGINT, signal.SIGTERM)) -> Iterator[None]:
    """The signals of `signums` whose handlers raise (Ctrl-C's KeyboardInterrupt, the SIGTERM of
    terminate_as_interrupt) wait until the block ends, then raise as they would have: for work an
    exception in its middle would leave half done (an import of a C extension; trials the storage
    holds as RUNNING before their caller has them). Signals left at their defaults are not held.
    Only the main thread handles signals: elsewhere the block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    before = {}
    for signum in signums:
        if callable(signal.getsignal(signum)):
            before[signum] = signal.signal(signum, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)
        for signum in dict.fromkeys(received):
            signal.raise_signal(signum)  # its own handler runs now, here


@contextmanager
def terminate_as_interrupt(prepare: Optional[Callable[[], None]] = None):
    """SIGTERM raises KeyboardInterrupt in the block (main thread only), so that a process
    stopped by its own parent (rnnexp-reproduce stopping rnnexp-study) stops its children as an
    interrupt would, instead of leaving them running.

    `prepare` runs first with the interrupt held back, raised once it returns: for imports of
    C extensions (torch), which an exception raised in their middle leaves half set up, so that
    the interpreter aborts as it exits."""
    if threading.current_thread() is not threading.main_thread():
        if prepare is not None:
            prepare()
        yield
        return

    received = []

    def interrupt(signum, frame):
        received.append(signum)
        raise KeyboardInterrupt

    before = signal.signal(signal.SIGTERM, interrupt)
    try:
        if prepare is not None:
            with interrupts_held((signal.SIGTERM,)):
                prepare()
        yield
    except KeyboardInterrupt:
        raise
    except BaseException as err:
        # the interrupt landed inside code that turned it into an error of its own (a lock
        # file's rename half done, Hydra wrapping it while composing): still an interrupt
        if received:
            raise KeyboardInterrupt from err
        raise
    finally:
        signal.signal(signal.SIGTERM, before)


class Child:
    """A child process of this one (start_module), its output in log_path."""

    def __init__(self, proc: subprocess.Popen, log_path: Path):
        self.proc, self.log_path = proc, log_path
        self.started = time.perf_counter()
        self.ended: Optional[float] = None  # when it exited (perf_counter), seen by a watcher
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        self.proc.wait()
        self.ended = time.perf_counter()

    @property
    def wall_s(self) -> Optional[float]:
        return None if self.ended is None else self.ended - self.started

    def wait(self, on_poll: Optional[Callable[[], None]] = None,
             stop: threading.Event = STOP) -> None:
        """Until it exits; on_poll every POLL_S and once after. When `stop` is set or this
        process is interrupted, the child is terminated and KeyboardInterrupt raised. StepFailed
        when it exits non-zero."""
        try:
            while self.proc.poll() is None:
                if stop.wait(POLL_S):
                    raise KeyboardInterrupt
                if on_poll is not None:
                    on_poll()
        except BaseException:
            self.terminate()  # our own child: an interrupt of the orchestrator stops it too
            raise
        if self.ended is None:  # exited before its watcher thread noted it
            self.ended = time.perf_counter()
        if on_poll is not None:
            on_poll()
        if self.proc.returncode != 0:
            raise StepFailed(f"{last_error(self.log_path)} (log: {self.log_path})")

    def terminate(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait()


# ---------------------------------------------------------------------------------- in process

class _Switch:
    """A text stream that writes to its target, or to the stream it replaced when it has none.
    Installed once as sys.stdout and sys.stderr: whatever binds to them while a step runs in
    process (Hydra's and Optuna's log handlers) follows the switch, so it writes into the step's
    log then and to the console after, and never into a closed file."""

    def __init__(self, console):
        self.console = console
        self.target = None

    def write(self, text: str) -> int:
        return (self.target or self.console).write(text)

    def flush(self) -> None:
        (self.target or self.console).flush()

    def isatty(self) -> bool:
        return self.target is None and self.console.isatty()

    def __getattr__(self, name):
        return getattr(self.target or self.console, name)


def _switches() -> tuple[_Switch, _Switch]:
    if not isinstance(sys.stdout, _Switch):
        sys.stdout = _Switch(sys.stdout)
    if not isinstance(sys.stderr, _Switch):
        sys.stderr = _Switch(sys.stderr)
    return sys.stdout, sys.stderr


def console() -> object:
    """The terminal's stderr, also while a step runs in process (for progress bars)."""
    return sys.stderr.console if isinstance(sys.stderr, _Switch) else sys.stderr


def advance_bar(bar, n: int) -> None:
    """bar.update(n) for a tqdm bar of runs whose total is the runs planned: a trial run again
    after a failure adds runs beyond the plan, and the total grows with them instead of the bar
    passing 100 % (where tqdm drops its total and its estimate)."""
    if bar.total is not None and bar.n + n > bar.total:
        bar.total = bar.n + n
    bar.update(n)


@contextmanager
def _into_log(log):
    out, err = _switches()
    out.target = err.target = log
    try:
        yield
    finally:
        log.flush()
        out.target = err.target = None


def train_in_process(args: Sequence[str], log_path: Path, launcher: str,
                     on_poll: Optional[Callable[[], None]] = None) -> None:
    """rnnexp-train `args` in this process (the main thread: Hydra's state is process-wide), its
    output appended to log_path; on_poll is called from a helper thread every POLL_S. An error of
    the run is StepFailed with its one line (the traceback goes to the log); Ctrl-C propagates."""
    from hydra.core.global_hydra import GlobalHydra

    from rnnexp.cli.train import train_app
    from rnnexp.errors import one_line

    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    done = threading.Event()
    poller = threading.Thread(target=_poll_until, args=(done, on_poll), daemon=True)
    saved_argv, saved_env = sys.argv, dict(os.environ)
    with open(log_path, "a", encoding="utf-8") as log, _into_log(log), _threads_for(launcher):
        log.write(f"$ {shlex.join(['rnnexp-train', *args])}\n")
        sys.argv = ["rnnexp-train", *args]
        os.environ["HYDRA_FULL_ERROR"] = "1"  # the exception reaches us instead of Hydra's exit(1)
        poller.start()
        try:
            train_app()
        except SystemExit as err:  # Hydra's own command line (argparse) exits
            if err.code:
                raise StepFailed(f"rnnexp-train exited {err.code} (log: {log_path})") from None
        except Exception as err:  # noqa: BLE001 - any failure of the run is the step's failure
            traceback.print_exc(file=log)
            raise StepFailed(f"{one_line(err)} (log: {log_path})") from err
        finally:
            done.set()
            poller.join()
            sys.argv = saved_argv
            os.environ.clear()
            os.environ.update(saved_env)
            GlobalHydra.instance().clear()
    if on_poll is not None:
        on_poll()


def _poll_until(done: threading.Event, on_poll: Optional[Callable[[], None]]) -> None:
    while on_poll is not None and not done.wait(POLL_S):
        on_poll()


@contextmanager
def _threads_for(launcher: str):
    """One intra-op thread for the basic launcher, as child_env gives a child; the batched
    launcher sets its own."""
    if launcher != "basic":
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class Runner:
    """How a series of rnnexp-train steps runs: the launcher, in this process or each in a child,
    what to call for progress while one trains, and the event that stops them."""
    launcher: str = field(default_factory=default_launcher)
    in_process: bool = False
    on_poll: Optional[Callable[[], None]] = None
    stop: threading.Event = STOP

    def __post_init__(self) -> None:
        if self.in_process:
            _switches()  # before any log handler (Optuna's, at its import) binds to the console

    def train(self, args: Sequence[str], log_path: Path) -> None:
        if self.in_process:
            train_in_process(args, log_path, self.launcher, self.on_poll)
        else:
            run_train(args, log_path, self.launcher, self.on_poll, self.stop)


def last_error(log_path: Path) -> str:
    """The log's last line that mentions an error, else its last line."""
    lines = [ln.strip() for ln in Path(log_path).read_text(encoding="utf-8", errors="replace")
             .splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error" in ln.lower()]
    return (errors or lines or ["rnnexp-train failed"])[-1]
