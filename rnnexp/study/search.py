"""Step 1, the search: an Optuna study over every optimizer and its own arguments, run by
`rnnexp-train -m` on the study file and resumed from its journal; files in results/study/search/.
"""
from __future__ import annotations

import ast
import os
import time
from functools import lru_cache
from pathlib import Path
from typing import Optional, Sequence

import pandas as pd
from omegaconf import OmegaConf

from rnnexp.configs import SWEEPS_DIR
from rnnexp.results import Results
from rnnexp.runner import Runner
from rnnexp.study import plots
from rnnexp.study.spec import FULL, OBJECTIVE_NAME, STUDY_CONFIG, Budget, StudyError

def study_args(name: str, results: Results, budget: Budget, launcher: str, sampler: str = "tpe",
               sampler_seed: int = 0, n_trials: Optional[int] = None,
               config: str = STUDY_CONFIG, n_jobs: Optional[int] = None,
               sweep_dir: Optional[Path] = None, extra: Sequence[str] = ()) -> list[str]:
    """rnnexp-train arguments of one Optuna study over a study file's space (`config`); its run
    dirs in sweep_dir (default study_runs/<name>); `extra`: more overrides (model=torch_gru)."""
    budget = budget.resolved()
    seeds = ",".join(str(s) for s in budget.trial_seeds)
    args = [
        "-m", "--config-dir", str(SWEEPS_DIR), "--config-name", config,
        f"hydra/launcher={launcher}",
        f"hydra.sweeper.study_name={name}",
        f"hydra.sweeper.storage={results.journal(name)}",
        f"hydra.sweep.dir={sweep_dir or results.study_runs / name}",
        f"hydra.sweeper.n_trials={n_trials or budget.n_trials}",
        f"hydra.sweeper.n_jobs={n_jobs or budget.n_jobs}",
        f"hydra.sweeper.seeds=[{seeds}]",
        f"train.epochs={budget.train_epochs()}",
        "hydra.sweeper.plots=[]",  # the study draws its own, once (write_search_results)
        *extra,
    ]
    if sampler != "tpe":  # "tpe": the study file's own (tpe_grouped)
        args.append(f"hydra/sweeper/sampler={sampler}")
    args.append(f"hydra.sweeper.sampler.seed={sampler_seed}")
    return args


def train_study(name: str, args: Sequence[str], results: Results, runner: Runner,
                n_trials: int, log_dir: Optional[Path] = None) -> bool:
    """Run (or resume) one study's rnnexp-train; its output in <log_dir>/<name>.log (default
    study_runs/logs/). A study that has its n_trials already starts nothing (False)."""
    if study_is_full(results, name, n_trials):
        return False
    runner.train(args, (log_dir or results.study_logs) / f"{name}.log")
    return True


def study_is_full(results: Results, name: str, n_trials: int) -> bool:
    """The study has n_trials finished trials and none running or waiting (as the sweeper counts:
    complete and pruned; a failed trial is run again)."""
    from collections import Counter

    from optuna.trial import TrialState

    if not results.journal(name).exists():
        return False
    try:
        states = Counter(t.state for t in open_study(results, name).get_trials(deepcopy=False))
    except KeyError:  # the journal holds no such study yet
        return False
    finished = states[TrialState.COMPLETE] + states[TrialState.PRUNED]
    return finished >= n_trials and not states[TrialState.RUNNING] and not states[TrialState.WAITING]


def open_study(results: Results, name: str):
    """The study in its journal, opened once per process: later calls read only what was
    appended since (a journal storage syncs with its file on every read)."""
    return _open_study(str(results.journal(name)), name)


@lru_cache(maxsize=None)
def _open_study(journal: str, name: str):
    import optuna

    from rnnexp.tuning.storage import open_storage

    return optuna.load_study(study_name=name, storage=open_storage(journal))


# ------------------------------------------------------------------------------ the search
def run_study(results: Results, budget: Budget = FULL, runner: Optional[Runner] = None) -> dict:
    """Run (or resume) the study; its files land in results/study/search/. Returns the best
    trial's params and value."""
    runner = runner or Runner()
    name = STUDY_CONFIG + budget.name_suffix
    out = results.study / "search"
    start = time.perf_counter()
    train_study(name, study_args(name, results, budget, runner.launcher), results, runner,
                budget.resolved().n_trials)
    write_search_results(open_study(results, name), out, results.root)
    best = OmegaConf.to_container(OmegaConf.load(out / "optimization_results.yaml"))
    if "best_params" not in best:
        raise StudyError(f"study {name!r} has no completed trial ({out / 'optimization_results.yaml'})")
    return {"study_name": name, "best_params": best["best_params"], "best_value": best["best_value"],
            "best_trial": best["best_trial"], "trials": best["trials"],
            "trials_span_s": trials_span_s(results, name),
            "wall_time_s": round(time.perf_counter() - start, 1)}


def write_search_results(study_obj, out: Path, root: Path) -> None:
    """The sweeper's end-of-study files, with the objective named in words (its expression would
    be the axis label), a wider history plot, and a slice plot of the best optimizer's own trials
    (the sweeper's puts every optimizer's arguments side by side, 12 panels)."""
    from rnnexp.tuning.outputs import results_are_current, write_plots, write_tables

    if results_are_current(study_obj, out):
        return  # a resumed study that ran nothing new: its files stand
    write_tables(study_obj, out)
    relative_job_dirs(out / "trials.csv", root)
    write_plots(study_obj, out, [OBJECTIVE_NAME], ["param_importances"])
    if study_obj.best_trial is None:
        return
    plots.plot_optimization_history(study_obj, out / "optimization_history.png")
    optimizer = study_obj.best_trial.params["optimizer"]
    plots.plot_best_slice(optuna_subset(study_obj, optimizer), study_obj.best_trial.params,
                          out / "slice.png")


def relative_job_dirs(trials_csv: Path, root: Path) -> None:
    """trials.csv with each trial's run dirs relative to the results dir, as committed."""
    trials = pd.read_csv(trials_csv)
    if "user_attrs_job_dirs" in trials:
        trials["user_attrs_job_dirs"] = [
            [os.path.relpath(d, root) for d in ast.literal_eval(v)] if isinstance(v, str) else v
            for v in trials.user_attrs_job_dirs]
        trials.to_csv(trials_csv, index=False)


def optuna_subset(study_obj, optimizer: str):
    """An in-memory study holding the completed trials of one optimizer."""
    import optuna
    from optuna.trial import TrialState

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "new study created" line
    sub = optuna.create_study(directions=study_obj.directions)
    optuna.logging.set_verbosity(verbosity)
    sub.add_trials([t for t in study_obj.trials if t.state == TrialState.COMPLETE
                    and t.params.get("optimizer") == optimizer])
    return sub


# ------------------------------------------------------------------------------ its wall time
def trials_span_s(results: Results, name: str) -> float:
    """Seconds during which the study had a trial running (the union of the trials' start-to-end
    intervals): the search's own wall time, which neither a resumed run that trains nothing nor
    the pause before a resume changes."""
    intervals = sorted((t.datetime_start, t.datetime_complete)
                       for t in open_study(results, name).get_trials(deepcopy=False)
                       if t.datetime_start is not None and t.datetime_complete is not None)
    return round(busy_seconds(intervals), 1)


def busy_seconds(intervals: Sequence[tuple]) -> float:
    """Length of the union of sorted (start, end) datetime intervals, in seconds."""
    total, current = 0.0, None
    for start, end in intervals:
        if current is not None and start <= current[1]:
            current = (current[0], max(current[1], end))
            continue
        if current is not None:
            total += (current[1] - current[0]).total_seconds()
        current = (start, end)
    if current is not None:
        total += (current[1] - current[0]).total_seconds()
    return total
