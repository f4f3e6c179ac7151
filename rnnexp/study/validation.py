"""Step 2, validation: the search's best setting and the report's, each trained on seeds the search
never saw. A search over hundreds of trials picks the luckiest, so only fresh seeds say how fast
a setting really is."""
from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from rnnexp.results import Results, read_done, write_if_changed
from rnnexp.runner import Runner
from rnnexp.study.plots import plot_loss_curves
from rnnexp.study.spec import FULL, Budget, StudyError, fixed_overrides, report_setting, study_file
from rnnexp.sweeps import hydra_value


def validate(results: Results, best_params: dict, budget: Budget = FULL,
             runner: Optional[Runner] = None) -> pd.DataFrame:
    """Both settings on the validation seeds: validation.csv/.md (the table), validation_runs.csv
    (one row per seed) and loss_curves.png in results/study/."""
    runner = runner or Runner()
    out = results.study
    out.mkdir(parents=True, exist_ok=True)
    params = {"best": dict(best_params), "report": report_setting()}
    runs = {label: validate_setting(results, label, p, budget, runner)
            for label, p in params.items()}
    summaries = {label: epochs_summary(r, budget.train_epochs()) for label, r in runs.items()}

    table = validation_table(summaries, params)
    numbers = pd.DataFrame([{"setting": k, **v} for k, v in summaries.items()])
    numbers.insert(1, "params", [setting_text(params[k]) for k in summaries])
    write_if_changed(out / "validation.csv", numbers.to_csv(index=False))
    write_if_changed(out / "validation.md", table.to_markdown(index=False) + "\n")
    all_runs = pd.concat(runs.values(), ignore_index=True)
    changed = write_if_changed(out / "validation_runs.csv", all_runs.assign(
        run_dir=[os.path.relpath(d, results.root) for d in all_runs.run_dir]).to_csv(index=False))

    figure = out / "loss_curves.png"
    if changed or not figure.exists():  # the curves are those runs' histories
        labels = {"best": "best found: " + setting_text(params["best"]),
                  "report": "report: " + setting_text(params["report"])}
        plot_loss_curves({k: loss_curves(r) for k, r in runs.items()}, labels,
                         study_file().loss_below, figure)
    return numbers


def validate_setting(results: Results, label: str, params: dict, budget: Budget,
                     runner: Runner, model: Optional[str] = None, runs_dir: Optional[Path] = None,
                     log_dir: Optional[Path] = None) -> pd.DataFrame:
    """Train one setting on the validation seeds (resumable: done runs are skipped); one row per
    seed with its epochs to converge and run dir. model: in place of the study file's; runs_dir,
    log_dir: in place of study_runs/validation/ and study_runs/logs/."""
    sweep_dir = (runs_dir or results.study_runs / "validation") / setting_dir_name(label, params)
    seeds = ",".join(str(s) for s in budget.validation_seeds)
    runs = finished_runs(sweep_dir, label)
    if set(budget.validation_seeds) - set(runs.seed):  # something to train (resumable)
        runner.train(["-m", f"hydra/launcher={runner.launcher}", f"hydra.sweep.dir={sweep_dir}",
                      "train.skip_done=true", *fixed_overrides(budget, model),
                      *param_overrides(params), f"seed={seeds}"],
                     (log_dir or results.study_logs) / f"validation-{label}.log")
        runs = finished_runs(sweep_dir, label)
    runs = runs[runs.seed.isin(budget.validation_seeds)]
    missing = set(budget.validation_seeds) - set(runs.seed)
    if missing:
        raise StudyError(f"validation of {label!r}: no finished run for seeds {sorted(missing)} "
                         f"in {sweep_dir}")
    return runs.sort_values("seed").reset_index(drop=True)


def finished_runs(sweep_dir: Path, label: str) -> pd.DataFrame:
    """One row per finished run under sweep_dir: its seed, epochs to converge and run dir."""
    rows = []
    for run_dir in sorted(sweep_dir.iterdir()) if sweep_dir.is_dir() else []:
        m = read_done(run_dir)
        if m is not None:
            rows.append({"setting": label, "seed": m["seed"], "converged": m["converged"],
                         "epochs_to_converge": m["epochs_to_converge"],
                         "final_loss": m["final_loss"], "run_dir": str(run_dir)})
    return pd.DataFrame(rows, columns=["setting", "seed", "converged", "epochs_to_converge",
                                       "final_loss", "run_dir"])


def param_overrides(params: dict) -> list[str]:
    """Optuna params (or the report's setting) as override lines; the optimizer group first."""
    keys = sorted(params, key=lambda k: (k != "optimizer", k))
    return [f"{k}={hydra_value(params[k])}" for k in keys]


def setting_dir_name(label: str, params: dict) -> str:
    """A run dir name that changes with the params, so skip_done never returns a stale run."""
    digest = hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:8]
    return f"{label}-{digest}"


# ------------------------------------------------------------------------------ statistics
def epochs_summary(runs: pd.DataFrame, budget_epochs: int) -> dict:
    """Median, quartiles and range of epochs to converge over one setting's seeds. A seed that
    never converged counts as infinitely slow, so a failing seed pulls the statistics up instead
    of dropping out of them."""
    epochs = np.where(runs.converged, runs.epochs_to_converge.astype(float), np.inf)  # (seeds,)
    q1, median, q3 = (quantile_with_inf(epochs, q) for q in (0.25, 0.5, 0.75))
    return {"median": median, "q1": q1, "q3": q3, "min": float(epochs.min()),
            "max": float(epochs.max()), "converged": int(runs.converged.sum()),
            "seeds": int(len(runs)), "budget": budget_epochs}


def quantile_with_inf(values: np.ndarray, q: float) -> float:
    """np.quantile's linear interpolation, where a neighbour that is inf makes the result inf
    (NumPy would give NaN for inf - inf)."""
    v = np.sort(np.asarray(values, float))
    pos = q * (len(v) - 1)
    lo, hi = v[math.floor(pos)], v[math.ceil(pos)]
    return float(hi) if math.isinf(hi) else float(lo + (hi - lo) * (pos - math.floor(pos)))


# ------------------------------------------------------------------------------ as text
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
    """Epochs as the table prints them: a failed seed (inf) as >budget."""
    return f">{budget}" if math.isinf(value) else f"{value:g}"


def validation_table(summaries: dict[str, dict], params: dict[str, dict]) -> pd.DataFrame:
    """The Markdown table's rows: one per setting, its numbers as text."""
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
