"""Console entry points, and the one error printer they all go through.

    rnnexp-train      cli/train.py      the Hydra app (one run, or -m for sweeps and studies)
    rnnexp-reproduce  cli/reproduce.py  every sweep and study, then the report
    rnnexp-report     cli/report.py     tables, plots and REPORT.md from existing runs
    rnnexp-study      cli/study.py      the fastest-convergence study alone
    rnnexp-generate   cli/generate.py   text from a trained run's model.npz
    rnnexp-dashboard  cli/dashboard.py  optuna-dashboard over a results dir or database
    rnnexp-slurm-workers  cli/slurm_workers.py  a SLURM job array of workers on one study

A failure prints `<prog>: error: <one line>` and exits 2 (HYDRA_FULL_ERROR=1 shows the traceback);
an interrupt prints one line and exits 130: what finished is kept, the same command resumes.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Callable, NoReturn, TypeVar

from rnnexp.errors import one_line

T = TypeVar("T")
FULL_ERROR = "HYDRA_FULL_ERROR"  # =1: tracebacks instead of one line, as Hydra's own setting


def fail(prog: str, message: str, code: int = 2) -> NoReturn:
    print(f"{prog}: error: {message}", file=sys.stderr)
    sys.exit(code)


def full_errors() -> bool:
    return os.environ.get(FULL_ERROR) == "1"


def guarded(prog: str, body: Callable[[], T], *, full: bool | None = None,
            interrupted: str = "what finished is kept; run the same command again to continue") -> T:
    """Run a script's body: any failure is one line and exit 2, an interrupt one line and 130."""
    full = full_errors() if full is None else full
    try:
        return body()
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; {interrupted}", file=sys.stderr)
        sys.exit(130)
    except Exception as e:  # noqa: BLE001 - every failure becomes one readable line
        if full:
            raise
        fail(prog, one_line(e))


class OneLineParser(argparse.ArgumentParser):
    """argparse whose errors are one line and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def add_results_option(parser: argparse.ArgumentParser) -> None:
    from rnnexp.results import DEFAULT

    parser.add_argument("--results", type=Path, default=DEFAULT,
                        help=f"results dir (default: {DEFAULT})")


def add_launcher_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--launcher", choices=("batched", "basic"), default=None,
                        help="Hydra launcher (default: batched where installed, else basic)")


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return value
