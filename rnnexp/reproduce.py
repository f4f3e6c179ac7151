"""The orchestration of rnnexp-reproduce: the one place that lists its steps (the report's table
sweeps, then the fastest-convergence study) and the sections of REPORT.md.

Each sweep runs as Hydra multiruns of rnnexp-train (rnnexp.runner), into results/runs/<sweep>/
with one dir per job named by its overrides and train.skip_done=true: a re-run, or a run after a
kill, trains only what has no metrics.json yet.
"""
from __future__ import annotations

import hashlib
import json
import shlex
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable, Optional

from tqdm import tqdm

from rnnexp import report, study
from rnnexp.study import cells
from rnnexp.results import Results, atomic_write_text, count_finished
from rnnexp.runner import STOP, Step, StepFailed, StepOutcome, advance_bar, run_train
from rnnexp.sweeps import Sweep, SweepError, load_sweeps


@dataclass
class Options:
    results: Path
    seeds: Optional[int]
    quick: bool
    only: Optional[list[str]]
    launcher: str  # basic | batched
    jobs: int = 1  # steps run at the same time


# ---------------------------------------------------------------- a sweep as a step

@dataclass
class SweepStep:
    sweep: Sweep
    results: Results

    @property
    def name(self) -> str:
        return self.sweep.name

    @property
    def sweep_dir(self) -> Path:
        return self.results.sweep_runs(self.sweep.name, self.sweep.quick)

    def planned_runs(self) -> int:
        return self.sweep.n_runs()

    def done_runs(self) -> int:
        return count_finished(self.sweep_dir)

    def fingerprint(self) -> str:
        """What the sweep runs: its commands (every setting, seed and path) and planned runs."""
        text = json.dumps([self.sweep.commands(self.sweep_dir.resolve()), self.planned_runs()])
        return hashlib.sha256(text.encode()).hexdigest()

    def is_done(self) -> bool:
        """Every command of this very sweep succeeded before, and its runs are all there."""
        marker = self.results.sweep_complete(self.sweep.name, self.sweep.quick)
        try:
            same = marker.read_text(encoding="utf-8").strip() == self.fingerprint()
        except OSError:
            return False
        return same and self.done_runs() >= self.planned_runs()

    def run(self, launcher: str, advance: Callable[..., None]) -> StepOutcome:
        outcome = StepOutcome(done_before=min(self.done_runs(), self.planned_runs()))
        if self.is_done():
            return outcome  # no child started: nothing to train
        seen = [self.done_runs()]

        def poll() -> None:
            now = self.done_runs()
            if now > seen[0]:
                advance(now - seen[0])
                seen[0] = now

        for args in self.sweep.commands(self.sweep_dir.resolve(), launcher):
            try:
                run_train(args, self.sweep_dir / "reproduce.log", launcher, on_poll=poll)
            except StepFailed as err:
                outcome.failures.append(f"{self.name}: {err}")
        outcome.trained = max(0, seen[0] - outcome.done_before)
        if not outcome.failures:
            atomic_write_text(self.results.sweep_complete(self.sweep.name, self.sweep.quick),
                              self.fingerprint() + "\n")
        return outcome


def sweep_steps(opts: Options, sweeps: list[Sweep]) -> list[Step]:
    return [SweepStep(s, Results(opts.results)) for s in sweeps]


def study_steps(opts: Options, sweeps: list[Sweep]) -> list[Step]:
    return [study.StudyStep(Results(opts.results), quick=opts.quick)]


def cells_steps(opts: Options, sweeps: list[Sweep]) -> list[Step]:
    return [cells.CellsStep(Results(opts.results), quick=opts.quick)]


# ---------------------------------------------------------------- what rnnexp-reproduce runs

StepFactory = Callable[[Options, list[Sweep]], list[Step]]
STEP_FACTORIES: tuple[StepFactory, ...] = (sweep_steps, study_steps, cells_steps)  # in this order

SECTIONS: tuple[report.Section, ...] = (
    report.Section("made", 0, report.render_made),
    report.Section("tables", 100, report.render_tables),
    report.Section("ambiguities", 200, report.render_ambiguities),
    report.Section("conclusions", 300, report.render_conclusions),
    report.Section("study", 350, study.render_section),  # once rnnexp-study has run
    report.Section("cells", 360, cells.render_section),  # once rnnexp-study --only cells has run
    report.Section("problems", 900, report.render_problems),
)


def build_report(results: Path, quick: Optional[bool] = None, warn: bool = False
                 ) -> report.ReportContext:
    """runs.csv, every table and plot, and REPORT.md with every section."""
    return report.build_report(results, SECTIONS, quick=quick, warn=warn)


def plan_steps(opts: Options) -> list[Step]:
    names = opts.only
    # every sweep file, not only the --only ones: the report reads them all, and a broken one
    # must stop the reproduction before it trains, not after (from the report's cache when
    # neither the files nor the code changed)
    every = report.cached_load_sweeps(opts.results) if Path(opts.results).is_dir() else load_sweeps()
    sweeps = every if not names else [s for s in every if s.name in names]
    sweeps = [s.quick_version(opts.seeds) if opts.quick else
              (s.with_seeds(opts.seeds) if opts.seeds else s) for s in sweeps]
    steps = [step for factory in STEP_FACTORIES for step in factory(opts, sweeps)]
    if names:
        known = {s.name for s in steps} | {s.name for s in every}
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

        def advance(n: int, note: Optional[str] = None) -> None:
            with lock:
                if note:
                    run_bar.set_postfix_str(note, refresh=False)
                advance_bar(run_bar, n)

        def run_one(step: Step) -> None:
            outcome = step.run(opts.launcher, advance)
            with lock:
                total.add(outcome)
                sweep_bar.set_postfix_str(step.name)
                sweep_bar.update(1)

        # the largest first (the study before the table sweeps): the others fill the other
        # worker meanwhile, instead of the largest starting last and running alone
        order = sorted(steps, key=lambda s: -s.planned_runs())
        with ThreadPoolExecutor(max_workers=max(1, opts.jobs)) as pool:
            futures = [pool.submit(run_one, step) for step in order]
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
    previous = report.read_manifest(opts.results)
    manifest = {
        "command": shlex.join(["rnnexp-reproduce", *argv]),
        "started": started.isoformat(timespec="seconds"), "wall_s": round(wall_s, 1),
        "quick": opts.quick, "seeds": opts.seeds, "launcher": opts.launcher,
        "steps": [s.name for s in steps], "runs_trained": outcome.trained,
        "runs_done_before": outcome.done_before, "failures": outcome.failures,
        "earlier": (previous.get("earlier", []) + [{k: previous[k] for k in ("command", "started")
                                                    if k in previous}])[-20:] if previous else [],
    }
    atomic_write_text(Results(opts.results).manifest, json.dumps(manifest, indent=1) + "\n")


def reproduce(opts: Options, steps: list[Step], argv: list[str]) -> tuple[StepOutcome,
                                                                          report.ReportContext]:
    """Train what is missing, then build the report (the caller holds the results dir's lock)."""
    start, started = time.perf_counter(), datetime.now().astimezone()
    outcome = run_steps(steps, opts)
    write_manifest(opts, argv, started, time.perf_counter() - start, outcome, steps)
    return outcome, build_report(opts.results, quick=opts.quick)


__all__ = ["Options", "SECTIONS", "STEP_FACTORIES", "SweepStep", "build_report", "plan_steps",
           "reproduce", "run_steps", "SweepError"]
