"""The fastest-convergence study: search, validation on fresh seeds, and a sampler comparison.

Q2(ii) of the report asks for the fastest convergence of a 5-unit nn.RNN on "edgement" within
100 epochs; the report answered by hand (RMSprop lr 0.4, alpha 0.5, eps 1e-18). Here:

    run_study        an Optuna study over every optimizer and its own arguments
                     (sweeps/fastest_convergence.yaml), through `rnnexp-train -m`; resumable
    validate         the best setting and the report's, each on seeds the search never saw
    compare_samplers TPE against random search: best-so-far objective against trial count
    report_section   the Markdown section for REPORT.md

Every step runs the real CLI in a subprocess, so the runs are ordinary run dirs. Layout under
`results` (the --results dir):

    studies/<name>.log          Optuna journal storage (same name + storage = resume)
    study/                      small outputs, committed: YAML, CSV, Markdown, PNG
    study_runs/                 run dirs (search, validation, comparison) and logs, not committed
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import math
import os
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from rnnexp.config import ConvergeConfig

ROOT = Path(__file__).resolve().parent.parent
SWEEPS_DIR = ROOT / "sweeps"
STUDY_CONFIG = "fastest_convergence"  # sweeps/fastest_convergence.yaml

# The report's hand-tuned answer to Q2(ii) (report.md), momentum 0 as the report states
REPORT_SETTING = {"optimizer": "rmsprop", "optimizer.lr": 0.4, "optimizer.alpha": 0.5,
                  "optimizer.eps": 1e-18, "optimizer.momentum": 0.0}
REPORT_MEDIAN_EPOCHS = 89  # its median over 10 seeds (measurements.md)

OBJECTIVE_NAME = "epochs, slowest seed"  # the objective in the plots (>budget: a seed failed)
STUDY_SUBDIR = "study"  # results/study/: the committed outputs
# results/study_runs/: run dirs. Not under results/runs/, which rnnexp-report collects into
# runs.csv and matches to the report's tables by config: thousands of search runs do not belong
# there, and the validation runs of the report's setting would silently join the Q2(ii) table
RUNS_SUBDIR = Path("study_runs")
STORAGE_SUBDIR = "studies"  # results/studies/: journal files
POLL_S = 0.5  # how often a running rnnexp-train child checks for a stop


class StudyError(RuntimeError):
    """A step of the study whose command failed; the message holds the command's last lines."""


@dataclass(frozen=True)
class Budget:
    """How much each step runs. FULL is the committed study; QUICK is for CI."""
    n_trials: int = 300
    n_jobs: int = 4  # trials per launcher batch (more with the batched launcher)
    trial_seeds: tuple[int, ...] = (0, 1, 2, 3, 4)  # every trial trains one run per seed
    validation_seeds: tuple[int, ...] = tuple(range(1000, 1020))  # never used in the search
    compare_trials: int = 80
    compare_study_seeds: tuple[int, ...] = (0, 1, 2)
    samplers: tuple[str, ...] = ("tpe", "random")
    epochs: Optional[int] = None  # None: the study file's train.epochs
    name_suffix: str = ""  # quick studies never resume (or spoil) the full one

    def scaled_for_batched(self) -> "Budget":
        # the batched launcher trains a whole batch as one stacked computation: larger batches
        # are nearly free, and TPE's constant_liar keeps the asks of one batch apart
        return replace(self, n_jobs=max(self.n_jobs, 16))


FULL = Budget()
QUICK = Budget(n_trials=3, n_jobs=3, trial_seeds=(0, 1), validation_seeds=(1000, 1001, 1002),
               compare_trials=2, compare_study_seeds=(0,), epochs=20, name_suffix="-quick")


# ------------------------------------------------------------------------------ running the CLI
def default_launcher() -> str:
    """The batched launcher where installed (one stacked computation per batch), else basic."""
    found = importlib.util.find_spec("hydra_plugins.rnnexp_batched_launcher") is not None
    return "batched" if found else "basic"


def rnnexp_train(args: Sequence[str], log_path: Path, launcher: str,
                 stop: Optional[threading.Event] = None) -> None:
    """`rnnexp-train` in a subprocess (the console script's own code), output to log_path. When
    `stop` is set (rnnexp-reproduce was interrupted) or this process is, the child is terminated
    and KeyboardInterrupt raised; the study resumes from there next time."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "rnnexp.cli", *args]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    if launcher == "basic":
        # one model at a time, a few hundred numbers: intra-op threads only contend (12 runs on
        # a busy 2-core machine: 18 s with one thread, 104 s with the default); the batched
        # launcher sets its own (hydra.launcher.threads, default 1)
        env.setdefault("OMP_NUM_THREADS", "1")
    with open(log_path, "w", encoding="utf-8") as log:
        log.write(" ".join(cmd) + "\n")
        log.flush()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        try:
            while proc.poll() is None:
                if stop is None:
                    proc.wait()
                elif stop.wait(POLL_S):
                    raise KeyboardInterrupt
        except BaseException:
            proc.terminate()  # our own child
            proc.wait()
            raise
    if proc.returncode != 0:
        tail = log_path.read_text(encoding="utf-8").strip().splitlines()[-3:]
        raise StudyError(f"rnnexp-train exited {proc.returncode} (log {log_path}): "
                         + " | ".join(tail))


def study_file_cfg():
    """sweeps/fastest_convergence.yaml as written (its fixed keys and sweeper settings)."""
    return OmegaConf.load(SWEEPS_DIR / f"{STUDY_CONFIG}.yaml")


def pinned_option(cfg, group: str) -> str:
    """The option the study file's defaults list picks for a config group (`override /model: x`)."""
    for entry in cfg.defaults:
        if not isinstance(entry, str):
            for key, option in entry.items():
                if key.split()[-1].lstrip("/") == group:
                    return str(option)
    raise StudyError(f"{STUDY_CONFIG}.yaml: its defaults list does not pick a {group}")


def budget_epochs(budget: Budget) -> int:
    return budget.epochs or int(study_file_cfg().train.epochs)


def fixed_overrides(budget: Budget) -> list[str]:
    """The setting every run of the study shares, read from the study file."""
    cfg = study_file_cfg()
    return [f"word={cfg.word}", f"model={pinned_option(cfg, 'model')}",
            f"model.hidden_size={cfg.model.hidden_size}", f"train.epochs={budget_epochs(budget)}"]


def study_args(name: str, results: Path, budget: Budget, launcher: str, sampler: str = "tpe",
               sampler_seed: int = 0, n_trials: Optional[int] = None) -> list[str]:
    """rnnexp-train arguments of one Optuna study over the study file's space."""
    seeds = ",".join(str(s) for s in budget.trial_seeds)
    args = [
        "-m", "--config-dir", str(SWEEPS_DIR), "--config-name", STUDY_CONFIG,
        f"hydra/launcher={launcher}",
        f"hydra.sweeper.study_name={name}",
        f"hydra.sweeper.storage={results / STORAGE_SUBDIR / f'{name}.log'}",
        f"hydra.sweep.dir={results / RUNS_SUBDIR / name}",
        f"hydra.sweeper.n_trials={n_trials or budget.n_trials}",
        f"hydra.sweeper.n_jobs={budget.n_jobs}",
        f"hydra.sweeper.seeds=[{seeds}]",
        f"train.epochs={budget_epochs(budget)}",
    ]
    if sampler != "tpe":  # "tpe": the study file's own (tpe_grouped)
        args.append(f"hydra/sweeper/sampler={sampler}")
    args.append(f"hydra.sweeper.sampler.seed={sampler_seed}")
    return args


def write_search_results(study_obj, out: Path) -> None:
    """The sweeper's end-of-study files, with the objective named in words (its expression would
    be the axis label), a wider history plot, and a slice plot of the best optimizer's own trials
    (the sweeper's puts every optimizer's arguments side by side, 12 panels)."""
    from hydra_plugins.rnnexp_optuna_sweeper._results import write_results

    write_results(study_obj, out, [OBJECTIVE_NAME])
    relative_job_dirs(out / "trials.csv", out.parent.parent)
    if study_obj.best_trial is None:
        return
    from optuna.visualization import matplotlib as ovm

    ax = _optuna_plot(lambda: ovm.plot_optimization_history(study_obj, target_name=OBJECTIVE_NAME))
    ax.figure.set_size_inches(9, 5)
    ax.legend(loc="upper right")
    ax.set_title(f"Optimization history: {len(study_obj.trials)} trials, "
                 "above the budget some seed did not converge")
    _save(ax.figure, out / "optimization_history.png")

    best = study_obj.best_trial.params
    same = optuna_subset(study_obj, best["optimizer"])
    params = [k for k in best if k != "optimizer"]
    axes = _optuna_plot(lambda: ovm.plot_slice(same, params=params, target_name=OBJECTIVE_NAME))
    fig = np.ravel(axes)[0].figure
    fig.set_size_inches(3.4 * len(params), 4.2)
    fig.suptitle(f"Slice plot: the {len(same.trials)} {best['optimizer']} trials")
    _save(fig, out / "slice.png")


def relative_job_dirs(trials_csv: Path, results: Path) -> None:
    """trials.csv with each trial's run dirs relative to the results dir, as committed."""
    import ast

    trials = pd.read_csv(trials_csv)
    if "user_attrs_job_dirs" in trials:
        trials["user_attrs_job_dirs"] = [
            [os.path.relpath(d, results) for d in ast.literal_eval(v)] if isinstance(v, str) else v
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


def _optuna_plot(plot):
    import matplotlib
    import warnings

    matplotlib.use("Agg")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
        return plot()


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def open_study(results: Path, name: str):
    import optuna

    from rnnexp.hooks import open_storage

    storage = open_storage(str(results / STORAGE_SUBDIR / f"{name}.log"))
    return optuna.load_study(study_name=name, storage=storage)


# ------------------------------------------------------------------------------ 1. the search
def run_study(results: Path, budget: Budget = FULL, launcher: Optional[str] = None,
              stop: Optional[threading.Event] = None) -> dict:
    """Run (or resume) the study; its files land in results/study/search/. Returns the best
    trial's params and value."""
    launcher = launcher or default_launcher()
    name = STUDY_CONFIG + budget.name_suffix
    out = results / STUDY_SUBDIR / "search"
    start = time.perf_counter()
    rnnexp_train(study_args(name, results, budget, launcher),
                 results / RUNS_SUBDIR / "logs" / f"{name}.log", launcher, stop)
    write_search_results(open_study(results, name), out)
    best = OmegaConf.to_container(OmegaConf.load(out / "optimization_results.yaml"))
    if "best_params" not in best:
        raise StudyError(f"study {name!r} has no completed trial ({out / 'optimization_results.yaml'})")
    return {"study_name": name, "best_params": best["best_params"], "best_value": best["best_value"],
            "best_trial": best["best_trial"], "trials": best["trials"],
            "trials_span_s": trials_span_s(results, name),
            "wall_time_s": round(time.perf_counter() - start, 1)}


def trials_span_s(results: Path, name: str) -> float:
    """Seconds during which the study had a trial running (the union of the trials' start-to-end
    intervals): the search's own wall time, which neither a resumed run that trains nothing nor
    the pause before a resume changes."""
    intervals = sorted((t.datetime_start, t.datetime_complete) for t in open_study(results, name).trials
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


# ------------------------------------------------------------------------------ 2. validation
def param_overrides(params: dict) -> list[str]:
    """Optuna params (or REPORT_SETTING) as override lines; the optimizer group comes first."""
    from hydra_plugins.rnnexp_optuna_sweeper._search_space import hydra_value

    keys = sorted(params, key=lambda k: (k != "optimizer", k))
    return [f"{k}={hydra_value(params[k])}" for k in keys]


def setting_dir_name(label: str, params: dict) -> str:
    """A run dir name that changes with the params, so skip_done never returns a stale run."""
    digest = hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:8]
    return f"{label}-{digest}"


def validate_setting(results: Path, label: str, params: dict, budget: Budget,
                     launcher: str, stop: Optional[threading.Event] = None) -> pd.DataFrame:
    """Train one setting on the validation seeds (resumable: done runs are skipped); one row per
    seed with its epochs to converge and run dir."""
    sweep_dir = results / RUNS_SUBDIR / "validation" / setting_dir_name(label, params)
    seeds = ",".join(str(s) for s in budget.validation_seeds)
    rnnexp_train(["-m", f"hydra/launcher={launcher}", f"hydra.sweep.dir={sweep_dir}",
                  "train.skip_done=true", *fixed_overrides(budget), *param_overrides(params),
                  f"seed={seeds}"],
                 results / RUNS_SUBDIR / "logs" / f"validation-{label}.log", launcher, stop)
    rows = []
    for run_dir in sorted(p for p in sweep_dir.iterdir() if (p / "metrics.json").exists()):
        m = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
        rows.append({"setting": label, "seed": m["seed"], "converged": m["converged"],
                     "epochs_to_converge": m["epochs_to_converge"], "final_loss": m["final_loss"],
                     "run_dir": str(run_dir)})
    runs = pd.DataFrame(rows).sort_values("seed").reset_index(drop=True)
    missing = set(budget.validation_seeds) - set(runs.seed)
    if missing:
        raise StudyError(f"validation of {label!r}: no metrics.json for seeds {sorted(missing)}")
    return runs


def quantile_with_inf(values: np.ndarray, q: float) -> float:
    """np.quantile's linear interpolation, where a neighbour that is inf makes the result inf
    (NumPy would give NaN for inf - inf)."""
    v = np.sort(np.asarray(values, float))
    pos = q * (len(v) - 1)
    lo, hi = v[math.floor(pos)], v[math.ceil(pos)]
    return float(hi) if math.isinf(hi) else float(lo + (hi - lo) * (pos - math.floor(pos)))


def epochs_summary(runs: pd.DataFrame, budget_epochs: int) -> dict:
    """Median, quartiles and range of epochs to converge over one setting's seeds. A seed that
    never converged counts as infinitely slow, so a failing seed pulls the statistics up instead
    of dropping out of them."""
    epochs = np.where(runs.converged, runs.epochs_to_converge.astype(float), np.inf)  # (seeds,)
    q1, median, q3 = (quantile_with_inf(epochs, q) for q in (0.25, 0.5, 0.75))
    return {"median": median, "q1": q1, "q3": q3, "min": float(epochs.min()),
            "max": float(epochs.max()), "converged": int(runs.converged.sum()),
            "seeds": int(len(runs)), "budget": budget_epochs}


def setting_text(params: dict) -> str:
    """'RMSprop lr 0.4, alpha 0.5, ...' for tables and plot legends."""
    names = {"sgd": "SGD", "adam": "Adam", "adagrad": "Adagrad", "rmsprop": "RMSprop"}
    parts = []
    for key in sorted(params, key=lambda k: (k != "optimizer.lr", k)):
        if key == "optimizer":
            continue
        value = params[key]
        text = f"{value:.3g}" if isinstance(value, float) else str(value).lower()
        parts.append(f"{key.removeprefix('optimizer.')} {text}")
    return f"{names.get(params['optimizer'], params['optimizer'])} " + ", ".join(parts)


def epochs_text(value: float, budget: int) -> str:
    return f">{budget}" if math.isinf(value) else f"{value:g}"


def validation_table(summaries: dict[str, dict], params: dict[str, dict]) -> pd.DataFrame:
    rows = []
    for label, s in summaries.items():
        rows.append({
            "setting": label, "params": setting_text(params[label]),
            "median": epochs_text(s["median"], s["budget"]),
            "IQR": f"{epochs_text(s['q1'], s['budget'])}–{epochs_text(s['q3'], s['budget'])}",
            "min–max": f"{epochs_text(s['min'], s['budget'])}–{epochs_text(s['max'], s['budget'])}",
            "converged": f"{s['converged']}/{s['seeds']}",
        })
    return pd.DataFrame(rows)


def loss_curves(runs: pd.DataFrame) -> np.ndarray:
    """(seeds, epochs) loss of every run of one setting, from the run dirs' history.csv."""
    return np.stack([pd.read_csv(Path(d) / "history.csv").loss.to_numpy() for d in runs.run_dir])


def plot_loss_curves(curves: dict[str, np.ndarray], labels: dict[str, str], loss_below: float,
                     path: Path) -> Path:
    """Median loss per epoch with the 10-90 % band across seeds, one colour per setting."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with plt.style.context("default"):  # Optuna's plots switch the global style to ggplot
        fig, ax = plt.subplots(figsize=(8, 5.6))
        for (label, loss), color in zip(curves.items(), ("tab:blue", "tab:orange", "tab:green")):
            epochs = np.arange(1, loss.shape[1] + 1)
            lo, med, hi = np.nanquantile(loss, [0.1, 0.5, 0.9], axis=0)  # (epochs,) each
            ax.fill_between(epochs, lo, hi, color=color, alpha=0.25, linewidth=0)
            ax.plot(epochs, med, color=color, linewidth=2, label=textwrap.fill(labels[label], 90))
        ax.axhline(loss_below, color="gray", linestyle="--", linewidth=1,
                   label=f"convergence threshold {loss_below:g}")
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("training loss (cross-entropy)")
        n_seeds = next(iter(curves.values())).shape[0]
        ax.set_title(f'hidden 5, "edgement": median loss, 10–90 % band, {n_seeds} fresh seeds')
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), frameon=False)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return path


def validate(results: Path, best_params: dict, budget: Budget = FULL,
             launcher: Optional[str] = None, stop: Optional[threading.Event] = None) -> pd.DataFrame:
    """Both settings on the validation seeds: validation.csv/.md (the table), validation_runs.csv
    (one row per seed) and loss_curves.png in results/study/."""
    launcher = launcher or default_launcher()
    out = results / STUDY_SUBDIR
    out.mkdir(parents=True, exist_ok=True)
    params = {"best": dict(best_params), "report": dict(REPORT_SETTING)}
    runs = {label: validate_setting(results, label, p, budget, launcher, stop)
            for label, p in params.items()}
    n_epochs = budget_epochs(budget)
    summaries = {label: epochs_summary(r, n_epochs) for label, r in runs.items()}

    table = validation_table(summaries, params)
    numbers = pd.DataFrame([{"setting": k, **v} for k, v in summaries.items()])
    numbers.insert(1, "params", [setting_text(params[k]) for k in summaries])
    numbers.to_csv(out / "validation.csv", index=False)
    (out / "validation.md").write_text(table.to_markdown(index=False) + "\n", encoding="utf-8")
    all_runs = pd.concat(runs.values(), ignore_index=True)
    all_runs.assign(run_dir=[os.path.relpath(d, results) for d in all_runs.run_dir]).to_csv(
        out / "validation_runs.csv", index=False)

    loss_below = float(OmegaConf.select(study_file_cfg(), "converge.loss_below",
                                        default=ConvergeConfig.loss_below))
    labels = {"best": "best found: " + setting_text(params["best"]),
              "report": "report: " + setting_text(params["report"])}
    plot_loss_curves({k: loss_curves(r) for k, r in runs.items()}, labels, loss_below,
                     out / "loss_curves.png")
    return numbers


# ------------------------------------------------------------------------------ 3. samplers
def best_so_far(values: Sequence[float]) -> np.ndarray:
    """Running minimum of trial values in trial order; failed trials (NaN) change nothing."""
    v = np.asarray(values, float)
    return np.fmin.accumulate(np.where(np.isnan(v), np.inf, v))


def study_values(results: Path, name: str, n_trials: int) -> np.ndarray:
    """(n_trials,) objective of a study's trials by trial number; NaN where a trial failed."""
    from optuna.trial import TrialState

    trials = sorted(open_study(results, name).trials, key=lambda t: t.number)[:n_trials]
    return np.array([t.value if t.state == TrialState.COMPLETE else np.nan for t in trials])


def tpe_startup_trials(budget: Budget) -> int:
    """How many of TPE's first trials are random: its n_startup_trials (tpe_grouped.yaml) counts
    completed trials, and a batch of n_jobs trials is asked before any of it completes, so every
    batch that starts with fewer completed trials than that is random (20 at n_jobs 4, 32 at 16)."""
    path = SWEEPS_DIR / "hydra" / "sweeper" / "sampler" / "tpe_grouped.yaml"
    n_startup = int(OmegaConf.load(path).n_startup_trials)
    return math.ceil(n_startup / budget.n_jobs) * budget.n_jobs


def compare_samplers(results: Path, budget: Budget = FULL, launcher: Optional[str] = None,
                     stop: Optional[threading.Event] = None) -> pd.DataFrame:
    """One small study per sampler and study seed over the same space and objective. Writes
    sampler_comparison.csv (best-so-far per trial, long format), sampler_summary.csv and
    sampler_comparison.png in results/study/."""
    launcher = launcher or default_launcher()
    out = results / STUDY_SUBDIR
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for sampler, seed, name in compare_studies(budget):
        rnnexp_train(study_args(name, results, budget, launcher, sampler=sampler,
                                sampler_seed=seed, n_trials=budget.compare_trials),
                     results / RUNS_SUBDIR / "logs" / f"{name}.log", launcher, stop)
        values = study_values(results, name, budget.compare_trials)
        rows += [{"sampler": sampler, "study_seed": seed, "trial": i + 1, "value": v, "best_so_far": b}
                 for i, (v, b) in enumerate(zip(values, best_so_far(values)))]
    long = pd.DataFrame(rows)
    long.to_csv(out / "sampler_comparison.csv", index=False)
    summary = sampler_summary(long, budget_epochs(budget), tpe_startup_trials(budget))
    summary.to_csv(out / "sampler_summary.csv", index=False)
    plot_sampler_comparison(long, budget_epochs(budget), tpe_startup_trials(budget),
                            out / "sampler_comparison.png")
    return summary


def compare_studies(budget: Budget) -> list[tuple[str, int, str]]:
    """(sampler, sampler seed, study name) of every comparison study."""
    return [(sampler, seed, f"compare-{sampler}-s{seed}{budget.name_suffix}")
            for sampler in budget.samplers for seed in budget.compare_study_seeds]


def sampler_summary(long: pd.DataFrame, budget_epochs: int, startup: int) -> pd.DataFrame:
    """Per sampler: the best value after the last trial (mean, min, max over study seeds), and
    the share of trials after TPE's startup trials whose every seed converged. With the same
    sampler seed, TPE's startup trials are random search's first trials, so the two differ only
    from trial startup + 1 on."""
    rows = []
    for sampler, df in long.groupby("sampler", sort=False):
        final = df[df.trial == df.trial.max()].best_so_far
        later = df[df.trial > startup].value
        rows.append({"sampler": sampler, "trials": int(df.trial.max()),
                     "study_seeds": int(df.study_seed.nunique()), "final_mean": final.mean(),
                     "final_min": final.min(), "final_max": final.max(),
                     "startup_trials": startup,
                     "converged_after_startup_pct": round(100 * (later <= budget_epochs).mean(), 1)})
    return pd.DataFrame(rows)


def plot_sampler_comparison(long: pd.DataFrame, budget_epochs: int, startup: int,
                            path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with plt.style.context("default"):
        fig, ax = plt.subplots(figsize=(8, 4.8))
        groups = list(long.groupby("sampler", sort=False))
        colors = ("tab:blue", "tab:orange", "tab:green", "tab:red")
        # the first sampler (TPE) drawn last, on top: it equals random search until `startup`
        for (sampler, df), color in reversed(list(zip(groups, colors))):
            wide = df.pivot(index="trial", columns="study_seed", values="best_so_far")  # (trials, seeds)
            wide = wide.replace(np.inf, np.nan)  # no completed trial yet: nothing to draw
            ax.fill_between(wide.index, wide.min(axis=1), wide.max(axis=1), color=color, alpha=0.2,
                            linewidth=0, step="post")
            ax.plot(wide.index, wide.mean(axis=1), color=color, linewidth=2, drawstyle="steps-post",
                    label=f"{sampler}: mean of {wide.shape[1]} study seeds (band: min–max)")
        ax.axhline(budget_epochs, color="gray", linestyle="--", linewidth=1,
                   label=f"{budget_epochs} epochs: above, some seed did not converge")
        ax.axvline(startup + 0.5, color="gray", linestyle=":", linewidth=1,
                   label=f"TPE's first {startup} trials are random: the same as random search's")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_xlabel("trial")
        ax.set_ylabel("best so far: slowest seed's epochs to converge")
        ax.set_title("TPE vs random search on the fastest-convergence space")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=9)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return path


# ------------------------------------------------------------------------------ the report
def report_section(results_dir: Path) -> str:
    """The Markdown section of REPORT.md (which lives in results_dir) for the study."""
    results_dir = Path(results_dir)
    out = results_dir / STUDY_SUBDIR
    summary = OmegaConf.to_container(OmegaConf.load(out / "study.yaml"))
    numbers = pd.read_csv(out / "validation.csv").set_index("setting")
    table = (out / "validation.md").read_text(encoding="utf-8").strip()
    best, report = numbers.loc["best"], numbers.loc["report"]
    n = int(best.seeds)
    lines = [
        "## Q2(ii) by search: the fastest robust convergence with hidden size 5",
        "",
        f"An Optuna study ({summary['search']['trials'].get('complete', 0)} trials, TPE, "
        f"{len(summary['budget']['trial_seeds'])} seeds per trial) searched SGD, Adam, Adagrad "
        "and RMSprop with each one's own arguments for the fastest convergence of nn.RNN "
        f'hidden 5 on "edgement" within {int(best.budget)} epochs. A trial scores as its slowest '
        "seed, a seed that does not converge scoring worse than any that does (docs/study.md). Both settings "
        f"were then trained on {n} seeds the search never used "
        f"({summary['budget']['validation_seeds'][0]}–{summary['budget']['validation_seeds'][-1]}).",
        "",
        "Epochs to converge (loss below 5e-5 and the word spelled, through the last epoch):",
        "",
        table,
        "",
        f"Best setting (trial {summary['search']['best_trial']}): `"
        + " ".join(param_overrides(summary["search"]["best_params"])) + "`",
        "",
        f"The best setting converges in a median {epochs_text(best['median'], int(best.budget))} "
        f"epochs with {int(best.converged)} of {n} seeds converged; the report's RMSprop takes a "
        f"median {epochs_text(report['median'], int(report.budget))} with "
        f"{int(report.converged)} of {n} (measured earlier on 10 seeds: a median of about "
        f"{REPORT_MEDIAN_EPOCHS}, one seed failing).",
        "",
        f"![loss curves]({STUDY_SUBDIR}/loss_curves.png)",
        "",
    ]
    if (out / "sampler_summary.csv").exists():
        lines += sampler_lines(pd.read_csv(out / "sampler_summary.csv"))
    return "\n".join(lines) + "\n"


def sampler_lines(s: pd.DataFrame) -> list[str]:
    first = s.iloc[0]
    finals = "; ".join(f"{r.sampler} {r.final_mean:.1f} (range {r.final_min:g}–{r.final_max:g})"
                       for r in s.itertuples())
    shares = " vs ".join(f"{r.converged_after_startup_pct:g} % ({r.sampler})" for r in s.itertuples())
    return [
        "### Sampler comparison",
        "",
        f"Each sampler ran {int(first.trials)} trials on the same space and objective, "
        f"{int(first.study_seeds)} study seeds each (TPE as in the study; its first "
        f"{int(first.startup_trials)} trials are random, the very trials random search draws with "
        "the same seed, so the curves part only after them). Best objective after the last trial, "
        "mean over study seeds: "
        f"{finals}. Of the trials after trial {int(first.startup_trials)}, {shares} converged on "
        "every seed.",
        "",
        f"![sampler comparison]({STUDY_SUBDIR}/sampler_comparison.png)",
        "",
    ]


def render_report_section(ctx) -> str:
    """REPORT.md's section (registered in rnnexp.report); empty until the study has run."""
    done = (Path(ctx.results) / STUDY_SUBDIR / "study.yaml").exists()
    return report_section(ctx.results) if done else ""


# ------------------------------------------------------------------------------ rnnexp-reproduce
@dataclass
class StudyStep:
    """The whole study (search, validation, comparison) as one step of rnnexp-reproduce."""
    results: Path
    budget: Budget
    name: str = "study"

    def planned_runs(self) -> int:
        b = self.budget
        trials = b.n_trials + len(b.samplers) * len(b.compare_study_seeds) * b.compare_trials
        return trials * len(b.trial_seeds) + 2 * len(b.validation_seeds)

    def done_runs(self) -> int:
        root = self.results / RUNS_SUBDIR
        return sum(1 for _ in root.glob("**/metrics.json")) if root.exists() else 0

    def run(self, opts, advance):
        from rnnexp.reproduce import STOP, StepOutcome

        before = self.done_runs()
        outcome = StepOutcome(done_before=min(before, self.planned_runs()))
        try:
            run_all(self.results, self.budget, opts.launcher, command="rnnexp-reproduce (study)",
                    stop=STOP)
        except StudyError as err:
            outcome.failures.append(f"study: {err}")
        outcome.trained = max(0, self.done_runs() - before)
        advance(outcome.trained)
        return outcome


def reproduce_steps(opts, sweeps) -> list[StudyStep]:
    """rnnexp-reproduce's step factory (registered in rnnexp.reproduce)."""
    return [StudyStep(Path(opts.results), QUICK if opts.quick else FULL)]


# ------------------------------------------------------------------------------ all three
def run_all(results: Path, budget: Budget = FULL, launcher: Optional[str] = None,
            command: str = "rnnexp-study", stop: Optional[threading.Event] = None) -> dict:
    """Search, validate, compare samplers; study.yaml records what ran and how long it took."""
    results = Path(results).resolve()
    launcher = launcher or default_launcher()
    if launcher == "batched":
        budget = budget.scaled_for_batched()
    timings = {}
    start = time.perf_counter()
    search = run_study(results, budget, launcher, stop)
    timings["search_s"] = search.pop("wall_time_s")
    t = time.perf_counter()
    numbers = validate(results, search["best_params"], budget, launcher, stop)
    timings["validation_s"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    compare_samplers(results, budget, launcher, stop)
    timings["sampler_comparison_s"] = round(time.perf_counter() - t, 1)
    # the steps' own wall time from the storages, which a resumed invocation does not reset
    timings["search_trials_span_s"] = search["trials_span_s"]
    timings["sampler_comparison_trials_span_s"] = round(
        sum(trials_span_s(results, name) for _, _, name in compare_studies(budget)), 1)
    timings["total_s"] = round(time.perf_counter() - start, 1)
    summary = {
        "command": command,
        "launcher": launcher,
        "budget": {k: list(v) if isinstance(v, tuple) else v
                   for k, v in budget.__dict__.items()},
        "search": search,
        "validation": numbers.drop(columns=["params"]).set_index("setting").to_dict("index"),
        "wall_time": timings,
    }
    OmegaConf.save(OmegaConf.create(_plain(summary)), results / STUDY_SUBDIR / "study.yaml")
    (results / STUDY_SUBDIR / "SECTION.md").write_text(report_section(results), encoding="utf-8")
    return summary


def _plain(value):
    """NumPy scalars and tuples as YAML can hold them."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    return value


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(
        prog="rnnexp-study",
        description="Fastest-convergence study (hidden 5, 'edgement'): search, validation on "
                    "fresh seeds, sampler comparison; outputs in RESULTS/study/.")
    parser.add_argument("--quick", action="store_true", help="tiny budgets (CI)")
    parser.add_argument("--results", type=Path, default=Path("results"),
                        help="results dir (default: results)")
    parser.add_argument("--launcher", choices=("basic", "batched"), default=None,
                        help="Hydra launcher (default: batched where installed, else basic)")
    args = parser.parse_args(argv)
    from rnnexp.results_lock import ResultsBusy, results_lock

    try:
        args.results.mkdir(parents=True, exist_ok=True)
        # one writer per results dir, as for rnnexp-reproduce and rnnexp-report
        with results_lock(args.results, "rnnexp-study"):
            summary = run_all(args.results, QUICK if args.quick else FULL, args.launcher,
                              command=" ".join(["rnnexp-study", *(argv or sys.argv[1:])]))
    except (StudyError, ResultsBusy) as err:
        print(f"rnnexp-study: error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("rnnexp-study: interrupted; run the same command again to continue", file=sys.stderr)
        sys.exit(130)
    best = summary["validation"]["best"]
    print(f"best: {' '.join(param_overrides(summary['search']['best_params']))}")
    print(f"validation: median {best['median']:g} epochs, {best['converged']}/{best['seeds']} "
          f"converged; outputs in {Path(args.results).resolve() / STUDY_SUBDIR}; "
          f"{summary['wall_time']['total_s']:.0f} s")


if __name__ == "__main__":
    main()
