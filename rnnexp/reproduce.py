"""rnnexp-reproduce: every sweep (and registered study), then the report, into results/.

Each sweep runs as Hydra multiruns of rnnexp-train in a subprocess, into results/runs/<sweep>/
with one dir per job named by its overrides and train.skip_done=true: a re-run, or a run after a
kill, trains only what has no metrics.json yet. The batched launcher (hydra/launcher=batched) is
used where it is installed; `--launcher basic` runs one job after the other.

Steps come from a registry (`register_steps`): the sweeps of sweeps/ by default; a study (e.g. the
Optuna fastest-convergence search) adds its own step factory and a report section.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable, Optional, Protocol

from tqdm import tqdm

from rnnexp.artifacts import atomic_write_text
from rnnexp.report import (MANIFEST, OneLineParser, ReportContext, ReportError, build_report,
                           ensure_writable, read_manifest)
from rnnexp.results_lock import ResultsBusy, results_lock
from rnnexp.study import reproduce_steps as study_steps
from rnnexp.sweeps import CONF_DIR, Sweep, SweepError, load_sweeps

POLL_S = 0.5
STOP = threading.Event()  # set when the reproduction is interrupted: every step stops its child


@dataclass
class Options:
    results: Path
    seeds: Optional[int]
    quick: bool
    only: Optional[list[str]]
    launcher: str  # basic | batched
    jobs: int = 1  # steps run at the same time


@dataclass
class StepOutcome:
    trained: int = 0
    done_before: int = 0
    failures: list[str] = field(default_factory=list)


class Step(Protocol):
    name: str

    def planned_runs(self) -> int: ...

    def done_runs(self) -> int: ...

    def run(self, opts: Options, advance: Callable[[int], None]) -> StepOutcome: ...


# ---------------------------------------------------------------- a sweep as a step

def train_command() -> list[str]:
    """rnnexp-train of this interpreter (works without the console script on PATH)."""
    return [sys.executable, "-m", "rnnexp.cli"]


@dataclass
class SweepStep:
    sweep: Sweep
    runs_root: Path

    @property
    def name(self) -> str:
        return self.sweep.name

    @property
    def sweep_dir(self) -> Path:
        return self.sweep.sweep_dir(self.runs_root)

    def planned_runs(self) -> int:
        return self.sweep.n_runs()

    def done_runs(self) -> int:
        return sum(1 for _ in self.sweep_dir.glob("*/metrics.json"))

    def run(self, opts: Options, advance: Callable[[int], None]) -> StepOutcome:
        outcome = StepOutcome(done_before=min(self.done_runs(), self.planned_runs()))
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        launcher = "batched" if opts.launcher == "batched" else None
        log_path = self.sweep_dir / "reproduce.log"
        seen = self.done_runs()
        for args in self.sweep.commands(self.sweep_dir.resolve(), launcher):
            with open(log_path, "a", encoding="utf-8") as log:
                log.write(f"$ {shlex.join(['rnnexp-train', *args])}\n")
                log.flush()
                proc = subprocess.Popen([*train_command(), *args], stdout=log,
                                        stderr=subprocess.STDOUT, env=_child_env(opts.launcher))
                try:
                    while proc.poll() is None:
                        if STOP.wait(POLL_S):
                            raise KeyboardInterrupt
                        seen = self._advance(seen, advance)
                except BaseException:
                    proc.terminate()  # our own child: a kill of the reproduction stops it too
                    proc.wait()
                    raise
            seen = self._advance(seen, advance)
            if proc.returncode != 0:
                outcome.failures.append(f"{self.name}: {_last_error(log_path)}")
        outcome.trained = max(0, seen - outcome.done_before)
        return outcome

    def _advance(self, seen: int, advance: Callable[[int], None]) -> int:
        now = self.done_runs()
        if now > seen:
            advance(now - seen)
        return max(now, seen)


def _child_env(launcher: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env.setdefault("PYTHONUNBUFFERED", "1")
    if launcher == "basic":
        # one small model at a time: torch's thread pool costs more than it saves (on a busy
        # 2-core machine 10-20x per epoch); the batched launcher sets its own (`threads`, default 1)
        env.setdefault("OMP_NUM_THREADS", "1")
    return env


def _last_error(log_path: Path) -> str:
    lines = [ln.strip() for ln in log_path.read_text(encoding="utf-8", errors="replace").splitlines()
             if ln.strip()]
    errors = [ln for ln in lines if "error" in ln.lower()]
    return (errors or lines or ["rnnexp-train failed"])[-1] + f" (log: {log_path})"


def sweep_steps(opts: Options, sweeps: list[Sweep]) -> list[Step]:
    return [SweepStep(s, opts.results / "runs") for s in sweeps]


# ---------------------------------------------------------------- step registry

StepFactory = Callable[[Options, list[Sweep]], list[Step]]
STEP_FACTORIES: dict[str, StepFactory] = {"sweeps": sweep_steps,
                                          "study": study_steps}  # rnnexp.study, after the sweeps


def register_steps(name: str, factory: StepFactory) -> None:
    """Add steps that run after the sweeps (e.g. an Optuna study); `--only` may name them."""
    STEP_FACTORIES[name] = factory


# ---------------------------------------------------------------- launcher

def launcher_available(name: str) -> bool:
    """Whether `hydra/launcher=<name>` composes with rnnexp-train's config (conf/ or a plugin)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from rnnexp.config import register_configs

    register_configs()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            compose(config_name="config", overrides=[f"hydra/launcher={name}"],
                    return_hydra_config=True)
        return True
    except Exception:  # noqa: BLE001 - any failure means it cannot be used
        return False
    finally:
        GlobalHydra.instance().clear()


# ---------------------------------------------------------------- the whole reproduction

def plan_steps(opts: Options) -> list[Step]:
    names = opts.only
    # every sweep file, not only the --only ones: the report reads them all, and a broken one
    # must stop the reproduction before it trains, not after
    every = load_sweeps()
    sweep_names = {s.name for s in every}
    sweeps = every if not names else [s for s in every if s.name in names]
    sweeps = [s.quick_version(opts.seeds) if opts.quick else
              (s.with_seeds(opts.seeds) if opts.seeds else s) for s in sweeps]
    steps = []
    for factory in STEP_FACTORIES.values():
        steps += factory(opts, sweeps)
    if names:
        known = {s.name for s in steps} | sweep_names
        unknown = [n for n in names if n not in known]
        if unknown:
            raise SweepError(f"unknown sweep {unknown[0]!r}; available: {', '.join(sorted(known))}")
        steps = [s for s in steps if s.name in names]
    return steps


def run_steps(steps: list[Step], opts: Options) -> StepOutcome:
    """Run the steps, `opts.jobs` at a time (each step is its own rnnexp-train process, so two
    steps overlap one's start-up and training with the other's on a 2-core machine)."""
    total = StepOutcome()
    lock = threading.Lock()
    STOP.clear()
    with tqdm(total=len(steps), desc="sweeps", unit="sweep", position=0) as sweep_bar, \
            tqdm(total=sum(s.planned_runs() for s in steps), desc="runs", unit="run",
                 position=1) as run_bar:
        run_bar.update(sum(min(s.done_runs(), s.planned_runs()) for s in steps))

        def advance(n: int) -> None:
            with lock:
                run_bar.update(n)

        def run_one(step: Step) -> None:
            outcome = step.run(opts, advance)
            with lock:
                total.trained += outcome.trained
                total.done_before += outcome.done_before
                total.failures += outcome.failures
                sweep_bar.set_postfix_str(step.name)
                sweep_bar.update(1)

        with ThreadPoolExecutor(max_workers=max(1, opts.jobs)) as pool:
            futures = [pool.submit(run_one, step) for step in steps]
            try:
                for future in futures:
                    future.result()
            except BaseException:
                STOP.set()  # the other steps stop their children too, then the pool drains
                for future in futures:
                    future.cancel()
                raise
    return total


def write_manifest(opts: Options, argv: list[str], started: datetime, wall_s: float,
                   outcome: StepOutcome, steps: list[Step]) -> None:
    previous = read_manifest(opts.results)
    manifest = {
        "command": shlex.join(["rnnexp-reproduce", *argv]),
        "started": started.isoformat(timespec="seconds"), "wall_s": round(wall_s, 1),
        "quick": opts.quick, "seeds": opts.seeds, "launcher": opts.launcher,
        "steps": [s.name for s in steps], "runs_trained": outcome.trained,
        "runs_done_before": outcome.done_before, "failures": outcome.failures,
        "earlier": (previous.get("earlier", []) + [{k: previous[k] for k in ("command", "started")
                                                    if k in previous}])[-20:] if previous else [],
    }
    atomic_write_text(opts.results / MANIFEST, json.dumps(manifest, indent=1) + "\n")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = OneLineParser(prog="rnnexp-reproduce",
                           description="Run every sweep of the report, then build the report.")
    parser.add_argument("--seeds", type=_positive_int, default=None,
                        help="seeds per setting (default: each sweep's own, 5; --quick: 2)")
    parser.add_argument("--quick", action="store_true",
                        help="a tenth of the epochs and fewer seeds: for CI and a first look")
    parser.add_argument("--results", default="results", help="results dir (default: results)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these sweeps")
    parser.add_argument("--jobs", type=_positive_int, default=min(2, os.cpu_count() or 1),
                        help="sweeps run at the same time (default: 2, or 1 on one core)")
    parser.add_argument("--launcher", choices=("batched", "basic"), default=None,
                        help="Hydra launcher (default: batched where installed, else basic)")
    return parser.parse_args(argv)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return value


def _reproduce(opts: Options, steps: list[Step], argv: list[str], start: float,
               started: datetime) -> tuple[StepOutcome, ReportContext]:
    """Train what is missing, then build the report (under the results dir's lock)."""
    try:
        outcome = run_steps(steps, opts)
    except KeyboardInterrupt:
        print("rnnexp-reproduce: interrupted; finished runs are kept, run the same command again "
              "to continue", file=sys.stderr)
        sys.exit(130)
    write_manifest(opts, argv, started, time.perf_counter() - start, outcome, steps)
    return outcome, build_report(opts.results, quick=opts.quick)


def reproduce_main(argv: Optional[list[str]] = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    start, started = time.perf_counter(), datetime.now().astimezone()
    try:
        launcher = args.launcher or ("batched" if launcher_available("batched") else "basic")
        if launcher == "batched" and not launcher_available("batched"):
            raise ReportError("--launcher batched: hydra/launcher=batched is not installed; "
                              "use --launcher basic")
        opts = Options(Path(args.results), args.seeds, args.quick, args.only, launcher, args.jobs)
        steps = plan_steps(opts)  # unknown names fail here, before anything is written
        ensure_writable(opts.results)
        with results_lock(opts.results, "rnnexp-reproduce"):
            outcome, ctx = _reproduce(opts, steps, argv, start, started)
    except (ReportError, SweepError, ResultsBusy) as e:
        print(f"rnnexp-reproduce: error: {e}", file=sys.stderr)
        sys.exit(2)
    wall = time.perf_counter() - start
    for p in ctx.collection.problems:
        print(f"rnnexp-reproduce: warning: skipped {p}", file=sys.stderr)
    for failure in outcome.failures:
        print(f"rnnexp-reproduce: failed: {failure}", file=sys.stderr)
    print(f"{outcome.trained} runs trained, {outcome.done_before} done before, "
          f"{len(outcome.failures)} failed; report: {opts.results / 'REPORT.md'}; "
          f"took {wall:.1f} s (launcher: {launcher})")
    if outcome.failures:
        sys.exit(1)


if __name__ == "__main__":
    reproduce_main()
