"""All three steps in order (`run_all`, what rnnexp-study runs), and the same as one step of
rnnexp-reproduce (`StudyStep`)."""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional

from omegaconf import OmegaConf

from rnnexp.results import (Results, count_finished, json_safe, lock_held_by_parent,
                            write_if_changed)
from rnnexp.runner import (STOP, Child, Runner, StepFailed, StepOutcome, run_module, start_module,
                           terminate_as_interrupt)
from rnnexp.study.samplers import compare_samplers, compare_studies, train_comparison
from rnnexp.study.search import run_study, study_is_full, trials_span_s
from rnnexp.study.section import SECTION, SUMMARY, report_section
from rnnexp.study.progress import StudyWatch
from rnnexp.study.spec import FULL, QUICK, STUDY_CONFIG, Budget, StudyError
from rnnexp.study.validation import validate

STUDY_MODULE = "rnnexp.cli.study"
# what the study writes into results/study/ (besides study.yaml)
OUTPUTS = (SECTION, "validation.csv", "validation.md", "validation_runs.csv", "loss_curves.png",
           "sampler_comparison.csv", "sampler_summary.csv", "sampler_comparison.png",
           "search/optimization_results.yaml", "search/trials.csv")
PROGRESS_S = 2.0  # seconds between two counts of the study's progress


def run_all(results: Results, budget: Budget = FULL, runner: Optional[Runner] = None,
            command: str = "rnnexp-study", jobs: int = 1) -> dict:
    """Search, validate, compare samplers; study.yaml records what ran and how long it took.
    The runner says how each step trains (in this process or in children) and what to call for
    progress; an interrupt ends the running step, and the same call resumes later. With jobs > 1
    the sampler comparison, which needs nothing of the search, trains in a child process
    (`rnnexp-study --only comparison`) while the search and validation train here; this process
    then takes the comparison studies the child has not reached, from the last one."""
    results = Results(results.root.resolve())  # the steps get absolute paths
    runner = runner or Runner()
    launcher = runner.launcher
    # a child runs the budget it is told with --quick or without: FULL or QUICK only
    child_quick = {FULL: False, QUICK: True}.get(budget)
    budget = effective_budget(budget, launcher)
    timings = {}
    start = time.perf_counter()
    runs_before = count_finished(results.study_runs, "**")
    comparison = None
    if jobs > 1 and child_quick is not None and not comparison_is_full(results, budget):
        comparison = start_comparison(results, launcher, child_quick)
    with terminate_as_interrupt(prepare=import_training), _stopping(comparison):
        search = run_study(results, budget, runner)
        timings["search_s"] = search.pop("wall_time_s")
        t = time.perf_counter()
        numbers = validate(results, search["best_params"], budget, runner)
        timings["validation_s"] = round(time.perf_counter() - t, 1)
        t = time.perf_counter()
        shared_end = None
        if comparison is not None:
            # the comparison studies the child has not reached yet, taken here from the last
            shared = train_comparison(results, budget, runner, backwards=True)[0]
            if shared:
                shared_end = time.perf_counter()
                timings["sampler_comparison_studies_after_search"] = shared
            comparison.wait(runner.on_poll, runner.stop)
    compare_samplers(results, budget, runner)  # with a child: only the comparison's files
    if comparison is not None:
        end = max(comparison.started + comparison.wall_s, shared_end or 0.0)
        timings["sampler_comparison_s"] = round(end - comparison.started, 1)
        timings["sampler_comparison_in_parallel"] = True
    else:
        timings["sampler_comparison_s"] = round(time.perf_counter() - t, 1)
    # the steps' own wall time from the storages, which a resumed invocation does not reset
    timings["search_trials_span_s"] = search["trials_span_s"]
    timings["sampler_comparison_trials_span_s"] = round(
        sum(trials_span_s(results, c.name) for c in compare_studies(budget)), 1)
    timings["total_s"] = round(time.perf_counter() - start, 1)
    summary = {
        "command": command,
        "launcher": launcher,
        "budget": asdict(budget),
        "search": search,
        "validation": numbers.drop(columns=["params"]).set_index("setting").to_dict("index"),
        "wall_time": timings,
    }
    # keep_nonfinite: a failed seed's inf stays inf (YAML's .inf), as validation.csv has it
    summary = json_safe(summary, keep_nonfinite=True)
    previous = _recorded(results)
    if (count_finished(results.study_runs, "**") == runs_before and previous is not None
            and _same_study(previous, summary)):
        summary = previous  # nothing new ran: study.yaml keeps the timings of the run that did
    else:
        OmegaConf.save(OmegaConf.create(summary), results.study / SUMMARY)
    write_if_changed(results.study / SECTION, report_section(results))
    return summary


def import_training() -> None:
    """torch and the training code, imported before a SIGTERM may interrupt (see
    terminate_as_interrupt)."""
    import rnnexp.train  # noqa: F401 - imports torch


@contextmanager
def _stopping(child: Optional[Child]):
    """The child ends with the block, however the block ends."""
    try:
        yield
    finally:
        if child is not None:
            child.terminate()


def effective_budget(budget: Budget, launcher: str) -> Budget:
    """The budget as the study runs it under `launcher` (larger batches where they are stacked)."""
    return budget.scaled_for_batched() if launcher == "batched" else budget.resolved()


def comparison_is_full(results: Results, budget: Budget) -> bool:
    return all(study_is_full(results, c.name, budget.compare_trials) for c in compare_studies(budget))


def start_comparison(results: Results, launcher: str, quick: bool) -> Child:
    """`rnnexp-study --only comparison` in the background, under this process's lock on the
    results dir; its output in study_runs/logs/rnnexp-study-comparison.log."""
    args = ["--only", "comparison", "--jobs", "1", "--results", str(results.root),
            "--launcher", launcher, *(["--quick"] if quick else [])]
    with lock_held_by_parent(results.root):
        return start_module(STUDY_MODULE, "rnnexp-study", args,
                            results.study_logs / "rnnexp-study-comparison.log", launcher)


def recorded_summary(results: Results) -> dict:
    """study.yaml: what the last invocation that trained something recorded."""
    summary = _recorded(results)
    if summary is None:
        raise StudyError(f"no study recorded in {results.study / SUMMARY}")
    return summary


def _recorded(results: Results) -> Optional[dict]:
    try:
        return OmegaConf.to_container(OmegaConf.load(results.study / SUMMARY))
    except (OSError, ValueError):
        return None


def _same_study(a: dict, b: dict) -> bool:
    """The same budget, launcher, search result and validation numbers (timings aside)."""
    keys = ("launcher", "budget", "validation")
    return all(a.get(k) == b.get(k) for k in keys) and \
        {k: v for k, v in a["search"].items() if k != "trials_span_s"} == \
        {k: v for k, v in b["search"].items() if k != "trials_span_s"}


@dataclass
class StudyStep:
    """The whole study (search, validation, comparison) as one step of rnnexp-reproduce: one
    rnnexp-study child process, whose steps run in process (so the step pays one start-up), under
    the reproduction's lock on the results dir. Nothing runs when the study is done already."""
    results: Results
    quick: bool = False
    name: str = "study"

    @property
    def budget(self) -> Budget:
        return QUICK if self.quick else FULL

    def planned_runs(self) -> int:
        return planned_runs(self.budget)

    def done_runs(self) -> int:
        # every step's run dirs lie somewhere under study_runs/, at different depths
        return count_finished(self.results.study_runs, "**")

    def is_done(self, launcher: str) -> bool:
        """study.yaml records this very budget, every planned run is there, and so is every file
        the study writes from them."""
        recorded = _recorded(self.results)
        if recorded is None:
            return False
        budget = effective_budget(self.budget, launcher)
        out = self.results.study
        return (recorded.get("budget") == json_safe(asdict(budget))
                and all((out / name).exists() for name in OUTPUTS)
                and self.done_runs() >= self.planned_runs())

    def run(self, launcher: str, advance: Callable[[int], None]) -> StepOutcome:
        """Run (or resume) the study; advance(n) as n more runs finish. A failure is recorded in
        the outcome; an interrupt (STOP) ends the running child and propagates."""
        before = self.done_runs()
        outcome = StepOutcome(done_before=min(before, self.planned_runs()))
        if self.is_done(launcher):
            return outcome
        args = ["--results", str(self.results.root.resolve()), "--launcher", launcher,
                *(["--quick"] if self.quick else [])]
        return run_study_child(self.name, self.results, args,
                               self.results.study_logs / "rnnexp-study.log", launcher,
                               Progress(self.results, study_totals(self.budget), before, advance),
                               outcome)


def run_study_child(name: str, results: Results, args: list[str], log_path, launcher: str,
                    progress: Progress, outcome: StepOutcome) -> StepOutcome:
    """`rnnexp-study ARGS` as a step of rnnexp-reproduce: one child under the reproduction's lock
    on the results dir, its finished runs counted by `progress`. A failure is recorded in the
    outcome; an interrupt (STOP) ends the child and propagates."""
    before = progress.seen
    try:
        with lock_held_by_parent(results.root):
            run_module(STUDY_MODULE, "rnnexp-study", args, log_path, launcher, progress.poll, STOP)
    except StepFailed as err:
        outcome.failures.append(f"{name}: {err}")
    progress.poll(force=True)
    outcome.trained = max(0, progress.seen - before)
    return outcome


def planned_runs(budget: Budget) -> int:
    """Every run the study trains: the search's and comparison's trials times their seeds, and
    both settings on the validation seeds."""
    b = budget.resolved()
    trials = b.n_trials + len(compare_studies(b)) * b.compare_trials
    return trials * len(b.trial_seeds) + 2 * len(b.validation_seeds)


def study_totals(budget: Budget) -> dict[str, int]:
    """{study name: n_trials} of the search and every comparison study."""
    b = budget.resolved()
    return {STUDY_CONFIG + b.name_suffix: b.n_trials,
            **{c.name: b.compare_trials for c in compare_studies(b)}}


class Progress:
    """Counts a study's finished runs now and then (a count walks every run dir: 0.15 s for the
    full study's 4000 on a 2-core machine) and passes the news on: advance(new runs, a line on
    the running study's trials and best value). studies: {name: n_trials} of the Optuna studies
    to watch; runs: where the run dirs lie (default results/study_runs/)."""

    def __init__(self, results: Results, studies: dict[str, int], seen: int,
                 advance: Callable[..., None], runs: Optional[Path] = None):
        self.results, self.seen, self.advance = results, seen, advance
        self.runs = runs or results.study_runs
        self.watch = StudyWatch(results, studies)
        self.last = time.monotonic()

    def poll(self, force: bool = False) -> None:
        if not force and time.monotonic() - self.last < PROGRESS_S:
            return
        self.last = time.monotonic()
        now = count_finished(self.runs, "**")
        self.advance(max(0, now - self.seen), self.watch.line())
        self.seen = max(now, self.seen)
