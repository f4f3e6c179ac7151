"""One way to run a step of rnnexp-reproduce or rnnexp-study: rnnexp-train in a child process with
one environment, its output in a log file, stopped when the orchestrator is interrupted.

    STOP                a threading.Event: set it and every running child is terminated, its
                        caller gets KeyboardInterrupt; finished runs stay, the step resumes
    run_train(args, log, ...)   rnnexp-train with `args`; progress callbacks while it runs
    Step, StepOutcome   what the orchestrator (rnnexp.reproduce) runs and what it counts
"""
from __future__ import annotations

import importlib.util
import os
import shlex
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Protocol, Sequence

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

    def run(self, launcher: str, advance: Callable[[int], None]) -> StepOutcome: ...


def default_launcher() -> str:
    """The batched launcher where installed (one stacked computation per batch), else basic."""
    found = importlib.util.find_spec("hydra_plugins.rnnexp_batched_launcher") is not None
    return "batched" if found else "basic"


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


def train_command(args: Sequence[str]) -> list[str]:
    """rnnexp-train of this interpreter (works without the console script on PATH)."""
    return [sys.executable, "-m", TRAIN_MODULE, *args]


def run_train(args: Sequence[str], log_path: Path, launcher: str,
              on_poll: Optional[Callable[[], None]] = None, stop: threading.Event = STOP) -> None:
    """rnnexp-train `args` in a child process, its output appended to log_path; on_poll is called
    every POLL_S while it runs and once after. When `stop` is set or this process is interrupted,
    the child is terminated and KeyboardInterrupt raised. StepFailed when it exits non-zero."""
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"$ {shlex.join(['rnnexp-train', *args])}\n")
        log.flush()
        proc = subprocess.Popen(train_command(args), stdout=log, stderr=subprocess.STDOUT,
                                env=child_env(launcher))
        try:
            while proc.poll() is None:
                if stop.wait(POLL_S):
                    raise KeyboardInterrupt
                if on_poll is not None:
                    on_poll()
        except BaseException:
            proc.terminate()  # our own child: an interrupt of the orchestrator stops it too
            proc.wait()
            raise
    if on_poll is not None:
        on_poll()
    if proc.returncode != 0:
        raise StepFailed(f"{last_error(log_path)} (log: {log_path})")


def last_error(log_path: Path) -> str:
    """The log's last line that mentions an error, else its last line."""
    lines = [ln.strip() for ln in Path(log_path).read_text(encoding="utf-8", errors="replace")
             .splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error" in ln.lower()]
    return (errors or lines or ["rnnexp-train failed"])[-1]
