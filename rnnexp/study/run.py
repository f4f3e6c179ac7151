"""All three steps in order (`run_all`, what rnnexp-study runs), and the same as one step of
rnnexp-reproduce (`StudyStep`)."""
from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass
from typing import Callable, Optional

from omegaconf import OmegaConf

from rnnexp.results import Results, count_finished, json_safe
from rnnexp.runner import STOP, StepFailed, StepOutcome, default_launcher
from rnnexp.study.samplers import compare_samplers, compare_studies
from rnnexp.study.search import run_study, trials_span_s
from rnnexp.study.section import SECTION, SUMMARY, report_section
from rnnexp.study.spec import FULL, Budget
from rnnexp.study.validation import validate

# how often the study's finished runs are counted for progress while it trains: a count walks
# every run dir (0.15 s for the full study's 4000 on a 2-core machine), run_train polls every 0.5 s
PROGRESS_S = 5.0


def run_all(results: Results, budget: Budget = FULL, launcher: Optional[str] = None,
            command: str = "rnnexp-study", on_poll: Optional[Callable[[], None]] = None,
            stop: threading.Event = STOP) -> dict:
    """Search, validate, compare samplers; study.yaml records what ran and how long it took.
    on_poll is called while any child trains; setting `stop` ends the running child
    (KeyboardInterrupt), and the same call resumes later."""
    results = Results(results.root.resolve())  # the children get absolute paths
    launcher = launcher or default_launcher()
    budget = budget.scaled_for_batched() if launcher == "batched" else budget.resolved()
    timings = {}
    start = time.perf_counter()
    search = run_study(results, budget, launcher, on_poll, stop)
    timings["search_s"] = search.pop("wall_time_s")
    t = time.perf_counter()
    numbers = validate(results, search["best_params"], budget, launcher, on_poll, stop)
    timings["validation_s"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    compare_samplers(results, budget, launcher, on_poll, stop)
    timings["sampler_comparison_s"] = round(time.perf_counter() - t, 1)
    # the steps' own wall time from the storages, which a resumed invocation does not reset
    timings["search_trials_span_s"] = search["trials_span_s"]
    timings["sampler_comparison_trials_span_s"] = round(
        sum(trials_span_s(results, name) for _, _, name in compare_studies(budget)), 1)
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
    OmegaConf.save(OmegaConf.create(json_safe(summary, keep_nonfinite=True)),
                   results.study / SUMMARY)
    (results.study / SECTION).write_text(report_section(results), encoding="utf-8")
    return summary


@dataclass
class StudyStep:
    """The whole study (search, validation, comparison) as one step of rnnexp-reproduce."""
    results: Results
    budget: Budget
    name: str = "study"

    def planned_runs(self) -> int:
        b = self.budget.resolved()
        trials = b.n_trials + len(b.samplers) * len(b.compare_study_seeds) * b.compare_trials
        return trials * len(b.trial_seeds) + 2 * len(b.validation_seeds)

    def done_runs(self) -> int:
        # every step's run dirs lie somewhere under study_runs/, at different depths
        return count_finished(self.results.study_runs, "**")

    def run(self, launcher: str, advance: Callable[[int], None]) -> StepOutcome:
        """Run (or resume) the study; advance(n) as n more runs finish. A failure is recorded in
        the outcome; an interrupt (STOP) ends the running child and propagates."""
        before = self.done_runs()
        outcome = StepOutcome(done_before=min(before, self.planned_runs()))
        seen = [before]  # finished runs already passed to advance
        last = [time.monotonic()]  # when they were last counted

        def poll(force: bool = False) -> None:
            if not force and time.monotonic() - last[0] < PROGRESS_S:
                return
            last[0] = time.monotonic()
            now = self.done_runs()
            if now > seen[0]:
                advance(now - seen[0])
                seen[0] = now

        try:
            run_all(self.results, self.budget, launcher, command="rnnexp-reproduce (study)",
                    on_poll=poll, stop=STOP)
        except StepFailed as err:
            outcome.failures.append(f"study: {err}")
        poll(force=True)
        outcome.trained = max(0, seen[0] - before)
        return outcome
