"""Step 3, the sampler comparison: does a sampler's model earn its keep on this objective? The
best-so-far objective against trial count, for TPE and random search on the whole space, and for
TPE, random search, GP and CMA-ES on the RMSprop branch alone (four continuous arguments: GP and
CMA-ES cannot take the whole space's optimizer choice and its conditional arguments)."""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Optional, Sequence

import numpy as np
import pandas as pd

from rnnexp.results import Results, flocked, write_if_changed
from rnnexp.runner import Runner
from rnnexp.study.plots import plot_sampler_comparison
from rnnexp.study.search import open_study, study_args, study_is_full, train_study
from rnnexp.study.spec import BRANCH_CONFIG, FULL, STUDY_CONFIG, Budget, study_file

WHOLE, BRANCH = "whole space", "RMSprop branch"


@dataclass(frozen=True)
class CompareStudy:
    space: str  # WHOLE or BRANCH
    sampler: str  # a hydra/sweeper/sampler option; "tpe": the study file's own (tpe_grouped)
    seed: int  # the sampler's seed
    name: str  # the study's name (and journal file)

    @property
    def config(self) -> str:
        return STUDY_CONFIG if self.space == WHOLE else BRANCH_CONFIG


def compare_studies(budget: Budget) -> list[CompareStudy]:
    """Every comparison study: each sampler of each space, once per study seed."""
    out = []
    for space, samplers, tag in ((WHOLE, budget.samplers, ""),
                                 (BRANCH, budget.branch_samplers, "rmsprop-")):
        out += [CompareStudy(space, sampler, seed, f"compare-{tag}{sampler}-s{seed}{budget.name_suffix}")
                for sampler in samplers for seed in budget.compare_study_seeds]
    return out


def compare_samplers(results: Results, budget: Budget = FULL, runner: Optional[Runner] = None,
                     backwards: bool = False) -> Optional[pd.DataFrame]:
    """Run the comparison studies (train_comparison), then write sampler_comparison.csv
    (best-so-far per trial, long format), sampler_summary.csv and sampler_comparison.png in
    results/study/; the studies draw no plots of their own. None, with no files written, when
    another process still trains some of the studies: its own call writes them once all are
    there."""
    _, passed = train_comparison(results, budget, runner, backwards)
    if passed:
        return None
    out = results.study
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for c in compare_studies(budget):
        values = study_values(results, c.name, budget.compare_trials)
        rows += [{"space": c.space, "sampler": c.sampler, "study_seed": c.seed, "trial": i + 1,
                  "value": v, "best_so_far": b}
                 for i, (v, b) in enumerate(zip(values, best_so_far(values)))]
    long = pd.DataFrame(rows)
    changed = write_if_changed(out / "sampler_comparison.csv", long.to_csv(index=False))
    epochs, startup = budget.train_epochs(), tpe_startup_trials(budget)
    summary = sampler_summary(long, epochs, startup).assign(n_jobs=budget.compare_n_jobs)
    write_if_changed(out / "sampler_summary.csv", summary.to_csv(index=False))
    figure = out / "sampler_comparison.png"
    if changed or not figure.exists():  # drawn from sampler_comparison.csv alone
        plot_sampler_comparison(long, epochs, startup, figure)
    return summary


def train_comparison(results: Results, budget: Budget = FULL, runner: Optional[Runner] = None,
                     backwards: bool = False) -> tuple[int, int]:
    """Run (or resume) every comparison study not full yet, in order or from the last
    (`backwards`); (studies trained here, studies passed over because another process holds
    them).

    Two processes share the studies so: rnnexp-study's comparison process takes them in order
    while the search runs, and the search's process, once done, takes them from the end. Each
    trains a study under a claim on it (`claimed`) and passes over one the other holds."""
    runner = runner or Runner()
    studies = compare_studies(budget)
    trained = passed = 0
    for c in (studies[::-1] if backwards else studies):
        if study_is_full(results, c.name, budget.compare_trials):
            continue
        with claimed(results, c.name) as mine:
            if not mine:
                passed += 1
                continue
            # each batch asked once the last one is told (no overlap): in 60 trials a batch of
            # lag is a large share of what a model-based sampler learns from (CMA-ES waits for
            # a whole generation), and the comparison asks what each sampler does at its best
            args = study_args(c.name, results, budget, runner.launcher, sampler=c.sampler,
                              sampler_seed=c.seed, n_trials=budget.compare_trials,
                              config=c.config, n_jobs=budget.compare_n_jobs,
                              extra=["hydra.sweeper.overlap=false"])
            trained += train_study(c.name, args, results, runner, budget.compare_trials)
    return trained, passed


@contextmanager
def claimed(results: Results, name: str) -> Iterator[bool]:
    """Whether this process holds comparison study `name` for the block: an flock on
    results/studies/<name>.claim (rnnexp.results.flocked), False at once where another process
    holds it. The kernel drops the lock when its holder dies (SIGKILL included), so an
    interrupted study is free to resume."""
    path = results.journal(name).with_suffix(".claim")
    path.parent.mkdir(parents=True, exist_ok=True)
    with flocked(path) as (_, held):
        yield held


def study_values(results: Results, name: str, n_trials: int) -> np.ndarray:
    """(n_trials,) objective of a study's trials by trial number; NaN where a trial failed."""
    from optuna.trial import TrialState

    trials = sorted(open_study(results, name).get_trials(deepcopy=False),
                    key=lambda t: t.number)[:n_trials]
    return np.array([t.value if t.state == TrialState.COMPLETE else np.nan for t in trials])


def best_so_far(values: Sequence[float]) -> np.ndarray:
    """Running minimum of trial values in trial order; failed trials (NaN) change nothing."""
    v = np.asarray(values, float)
    return np.fmin.accumulate(np.where(np.isnan(v), np.inf, v))


def tpe_startup_trials(budget: Budget) -> int:
    """How many of TPE's first trials in a comparison study are random: its n_startup_trials (the
    study file's sampler) counts completed trials, and a batch of n_jobs trials is asked before
    any of it completes, so every batch that starts with fewer completed trials than that is
    random (20 at n_jobs 4, 32 at 16)."""
    n_jobs = budget.compare_n_jobs
    return math.ceil(study_file().n_startup_trials / n_jobs) * n_jobs


def sampler_summary(long: pd.DataFrame, budget_epochs: int, startup: int) -> pd.DataFrame:
    """Per sampler: the best value after the last trial (mean, min, max over study seeds), and
    the share of trials after TPE's startup trials whose every seed converged. With the same
    sampler seed, TPE's startup trials are random search's first trials, so the two differ only
    from trial startup + 1 on."""
    rows = []
    for (space, sampler), df in long.groupby(["space", "sampler"], sort=False):
        final = df[df.trial == df.trial.max()].best_so_far
        later = df[df.trial > startup].value
        rows.append({"space": space, "sampler": sampler, "trials": int(df.trial.max()),
                     "study_seeds": int(df.study_seed.nunique()), "final_mean": final.mean(),
                     "final_min": final.min(), "final_max": final.max(),
                     "startup_trials": startup,
                     "converged_after_startup_pct": round(100 * (later <= budget_epochs).mean(), 1)})
    return pd.DataFrame(rows)
