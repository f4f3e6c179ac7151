"""The hidden-5 question asked of each cell: nn.RNN, nn.GRU and nn.LSTM, each searched over the
fastest-convergence study's space (every optimizer with its own arguments), then each cell's best
setting trained on fresh seeds.

One study per cell, not one study with the cell as a categorical parameter. TPE spends its trials
where the objective already looks good, so a shared study would tune the cell that leads early
with many more trials than the others, and the comparison would be between unequal search
efforts. Here every cell gets the same number of trials, the same seeds per trial, the same
sampler and sampler seed and the same batches, so what differs is the cell alone.

The seeds of the validation are the same for every cell, but a seed draws each cell's own
weights (their shapes differ), so it does not pair the cells' runs: the comparisons are unpaired
(rnnexp.stats.unpaired), on epochs to converge, with a seed that does not converge counted as
one epoch past the budget.

Layout under the results dir:

    cells/                        committed: cells.yaml, validation.csv/.md, validation_runs.csv,
                                  comparisons.csv, loss_curves.png, SECTION.md, and per cell
                                  <model>/trials.csv and optimization_results.yaml
    cells_runs/cells-<model>/     the search's run dirs; cells_runs/validation/, cells_runs/logs/
    studies/cells-<model>.log     the Optuna journals (same name + storage = resume)
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass
from itertools import combinations
from typing import Callable, Optional

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from rnnexp.results import Results, count_finished, json_safe, write_if_changed
from rnnexp.runner import Runner, StepOutcome
from rnnexp.study.plots import plot_loss_curves
from rnnexp.study.search import (open_study, relative_job_dirs, study_args, study_is_full,
                                 train_study, trials_span_s)
from rnnexp.study.spec import Budget, StudyError, study_file
from rnnexp.study.validation import (epochs_summary, epochs_text, loss_curves, param_overrides,
                                     setting_text, validate_setting, validation_table)

CELLS = ("torch_rnn", "torch_gru", "torch_lstm")
CELL_NAMES = {"torch_rnn": "nn.RNN", "torch_gru": "nn.GRU", "torch_lstm": "nn.LSTM"}
SUMMARY, SECTION = "cells.yaml", "SECTION.md"
# what the cells study writes into results/cells/ (besides cells.yaml)
OUTPUTS = (SECTION, "validation.csv", "validation.md", "validation_runs.csv", "comparisons.csv",
           "loss_curves.png", *(f"{m}/trials.csv" for m in CELLS))

# the committed study: per cell as many trials as the budget of a quick look at a new cell
# allows on a laptop (about half a minute each), batches of 16 as the main study's batched search
CELLS_FULL = Budget(n_trials=300, n_jobs=16)
CELLS_QUICK = Budget(n_trials=3, n_jobs=3, trial_seeds=(0, 1), validation_seeds=(1000, 1001, 1002),
                     epochs=20, name_suffix="-quick")


def budget_record(budget: Budget) -> dict:
    """What of a Budget the cells study uses (the sampler comparison's fields are not its own)."""
    keys = ("n_trials", "n_jobs", "trial_seeds", "validation_seeds", "epochs", "name_suffix")
    return json_safe({k: v for k, v in asdict(budget.resolved()).items() if k in keys})


def study_name(model: str, budget: Budget) -> str:
    return f"cells-{model}{budget.name_suffix}"


def study_totals(budget: Budget) -> dict[str, int]:
    """{study name: n_trials} of every cell's study."""
    return {study_name(m, budget): budget.resolved().n_trials for m in CELLS}


def planned_runs(budget: Budget) -> int:
    b = budget.resolved()
    return len(CELLS) * (b.n_trials * len(b.trial_seeds) + len(b.validation_seeds))


# ------------------------------------------------------------------------------ the steps
def run_cells(results: Results, budget: Budget = CELLS_FULL, runner: Optional[Runner] = None,
              command: str = "rnnexp-study --only cells") -> dict:
    """Search every cell, validate every cell's best setting; cells.yaml records what ran, and
    SECTION.md is REPORT.md's section. Resumable: the same call continues where it stopped."""
    results = Results(results.root.resolve())
    runner = runner or Runner()
    budget = budget.resolved()
    start = time.perf_counter()
    runs_before = count_finished(results.cells_runs, "**")
    searches = {model: search_cell(results, model, budget, runner) for model in CELLS}
    search_s = round(time.perf_counter() - start, 1)
    t = time.perf_counter()
    numbers = validate_cells(results, {m: s["best_params"] for m, s in searches.items()}, budget,
                             runner)
    summary = json_safe({
        "command": command,
        "launcher": runner.launcher,
        "budget": budget_record(budget),
        "search": searches,
        "validation": numbers.set_index("cell").drop(columns=["params"]).to_dict("index"),
        "wall_time": {"search_s": search_s, "validation_s": round(time.perf_counter() - t, 1),
                      "total_s": round(time.perf_counter() - start, 1)},
    }, keep_nonfinite=True)
    previous = recorded(results)
    unchanged = (previous is not None and count_finished(results.cells_runs, "**") == runs_before
                 and all(previous.get(k) == summary[k] for k in ("launcher", "budget", "validation")))
    if not unchanged:  # a resumed study that trained nothing keeps the timings of the one that did
        OmegaConf.save(OmegaConf.create(summary), results.cells / SUMMARY)
    write_if_changed(results.cells / SECTION, report_section(results))
    return recorded(results)


def recorded(results: Results) -> Optional[dict]:
    try:
        return OmegaConf.to_container(OmegaConf.load(results.cells / SUMMARY))
    except (OSError, ValueError):
        return None


def is_done(results: Results, budget: Budget, launcher: str) -> bool:
    """cells.yaml records this very budget and launcher, and every output file is there."""
    summary = recorded(results)
    return (summary is not None and summary.get("launcher") == launcher
            and summary.get("budget") == budget_record(budget)
            and all((results.cells / name).exists() for name in OUTPUTS)
            and all(study_is_full(results, study_name(m, budget), budget.resolved().n_trials)
                    for m in CELLS))


def search_cell(results: Results, model: str, budget: Budget, runner: Runner) -> dict:
    """Run (or resume) one cell's study; its trials in results/cells/<model>/."""
    from rnnexp.tuning.outputs import results_are_current, summarize, write_tables

    name = study_name(model, budget)
    args = study_args(name, results, budget, runner.launcher,
                      sweep_dir=results.cells_runs / name, extra=[f"model={model}"])
    train_study(name, args, results, runner, budget.n_trials, log_dir=results.cells_logs)
    study = open_study(results, name)
    out = results.cells / model
    if not results_are_current(study, out):
        write_tables(study, out)
        relative_job_dirs(out / "trials.csv", results.root)
    s = summarize(study)
    if "best_params" not in s:
        raise StudyError(f"cells study {name!r} has no completed trial ({results.journal(name)})")
    return {"study_name": name, "best_params": s["best_params"], "best_value": s["best_value"],
            "best_trial": s["best_trial"], "trials": s["trials"],
            "trials_span_s": trials_span_s(results, name)}


def validate_cells(results: Results, best: dict[str, dict], budget: Budget,
                   runner: Runner) -> pd.DataFrame:
    """Every cell's best setting on the validation seeds: validation.csv/.md, validation_runs.csv,
    comparisons.csv and loss_curves.png in results/cells/."""
    out = results.cells
    out.mkdir(parents=True, exist_ok=True)
    runs = {m: validate_setting(results, m, best[m], budget, runner, model=m,
                                runs_dir=results.cells_runs / "validation",
                                log_dir=results.cells_logs)
            for m in CELLS}
    epochs = budget.train_epochs()
    summaries = {m: epochs_summary(r, epochs) for m, r in runs.items()}
    numbers = pd.DataFrame([{"cell": m, **s} for m, s in summaries.items()])
    numbers.insert(1, "params", [setting_text(best[m]) for m in CELLS])
    write_if_changed(out / "validation.csv", numbers.to_csv(index=False))
    table = validation_table({CELL_NAMES[m]: s for m, s in summaries.items()},
                             {CELL_NAMES[m]: best[m] for m in CELLS}).rename(
        columns={"setting": "cell", "params": "best setting"})
    write_if_changed(out / "validation.md", table.to_markdown(index=False) + "\n")
    write_if_changed(out / "comparisons.csv", comparisons(runs, epochs).to_csv(index=False))
    all_runs = pd.concat(runs.values(), ignore_index=True)
    changed = write_if_changed(out / "validation_runs.csv", all_runs.assign(
        run_dir=[os.path.relpath(d, results.root) for d in all_runs.run_dir]).to_csv(index=False))
    figure = out / "loss_curves.png"
    if changed or not figure.exists():
        labels = {m: f"{CELL_NAMES[m]}: {setting_text(best[m])}" for m in CELLS}
        plot_loss_curves({m: loss_curves(r) for m, r in runs.items()}, labels,
                         study_file().loss_below, figure)
    return numbers


# ------------------------------------------------------------------------------ statistics
def epochs_or_past_budget(runs: pd.DataFrame, budget_epochs: int) -> np.ndarray:
    """Epochs to converge per seed; a seed that never converged counts as budget + 1."""
    return np.where(runs.converged, runs.epochs_to_converge.astype(float), budget_epochs + 1.0)


def comparisons(runs: dict[str, pd.DataFrame], budget_epochs: int) -> pd.DataFrame:
    """Every pair of cells: the difference of their mean epochs to converge, unpaired (a seed
    draws each cell's own weights), with its bootstrap interval and permutation test."""
    from rnnexp.stats import unpaired

    rows = []
    for a, b in combinations(CELLS, 2):
        e = unpaired(epochs_or_past_budget(runs[a], budget_epochs),
                     epochs_or_past_budget(runs[b], budget_epochs), scale="difference")
        rows.append({"a": a, "b": b, "difference": e.estimate, "low": e.low, "high": e.high,
                     "n_a": e.n, "n_b": e.n_b, "p": e.p, "test": e.test,
                     "too_close": e.too_close,
                     "sentence": e.describe(CELL_NAMES[a], CELL_NAMES[b], "epochs")})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------ REPORT.md
def render_section(ctx) -> str:
    """REPORT.md's section (registered in rnnexp.reproduce); empty until the cells study ran."""
    results = Results(ctx.results)
    return report_section(results) if (results.cells / SUMMARY).exists() else ""


def report_section(results: Results) -> str:
    out = results.cells
    summary = OmegaConf.to_container(OmegaConf.load(out / SUMMARY))
    numbers = pd.read_csv(out / "validation.csv").set_index("cell")
    pairs = pd.read_csv(out / "comparisons.csv")
    budget = summary["budget"]
    n_valid = len(budget["validation_seeds"])
    epochs = int(numbers.budget.iloc[0])
    order = sorted(CELLS, key=lambda m: (numbers.loc[m, "median"], -numbers.loc[m, "converged"]))
    fastest = order[0]
    figures = out.relative_to(results.root).as_posix()
    trials = {m: summary["search"][m]["trials"].get("complete", 0) for m in CELLS}
    lines = [
        "## The cell at hidden size 5: nn.RNN, nn.GRU and nn.LSTM",
        "",
        f"The same question for each cell: its own Optuna study over the same space as above "
        f"(SGD, Adam, Adagrad and RMSprop, each with its own arguments; hidden 5, \"edgement\", "
        f"{epochs} epochs), with the same budget for every cell: "
        f"{_same_or_list(trials)} complete trials, TPE with sampler seed 0, "
        f"{len(budget['trial_seeds'])} seeds per trial, batches of {budget['n_jobs']}. One study "
        "per cell, not the cell as one more choice in a shared study: TPE would spend most trials "
        "on the cell that leads early, and the others would be tuned with less search. Each "
        f"cell's best setting was then trained on {n_valid} seeds the searches never used "
        f"({budget['validation_seeds'][0]}–{budget['validation_seeds'][-1]}).",
        "",
        "Epochs to converge of each cell's best setting on the fresh seeds:",
        "",
        (out / "validation.md").read_text(encoding="utf-8").strip(),
        "",
        "Best settings: " + "; ".join(
            f"{CELL_NAMES[m]} `" + " ".join(param_overrides(summary["search"][m]["best_params"]))
            + "`" for m in CELLS) + ".",
        "",
        _fastest_sentence(numbers, fastest, epochs, n_valid)
        + " How sure that is, cell against cell (unpaired: a seed draws each cell's own weights, "
        f"so it does not pair their runs; a seed that does not converge counts as {epochs + 1}):",
        "",
    ]
    lines += [f"- {_sentence(row)}." for row in pairs.itertuples()]
    lines += ["", f"![loss curves of each cell's best setting]({figures}/loss_curves.png)", ""]
    return "\n".join(lines) + "\n"


def _fastest_sentence(numbers: pd.DataFrame, fastest: str, epochs: int, n_valid: int) -> str:
    row = numbers.loc[fastest]
    if math.isinf(row["median"]):
        return f"No cell's best setting converged within {epochs} epochs on half the fresh seeds."
    return (f"Fastest: **{CELL_NAMES[fastest]}**, a median {epochs_text(row['median'], epochs)} "
            f"epochs with {int(row['converged'])} of {n_valid} seeds converged.")


def _same_or_list(counts: dict[str, int]) -> str:
    values = set(counts.values())
    if len(values) == 1:
        return str(values.pop())
    return ", ".join(f"{v} ({CELL_NAMES[m]})" for m, v in counts.items())


def _sentence(row) -> str:
    text = str(row.sentence)
    return "T" + text[1:] if text.startswith("too close") else text


def cells_budget(quick: bool) -> Budget:
    return CELLS_QUICK if quick else CELLS_FULL


# ------------------------------------------------------------------------------ in rnnexp-reproduce
@dataclass
class CellsStep:
    """The cells study as one step of rnnexp-reproduce: one `rnnexp-study --only cells` child
    under the reproduction's lock on the results dir; nothing runs when it is done already."""
    results: Results
    quick: bool = False
    name: str = "cells"

    @property
    def budget(self) -> Budget:
        return cells_budget(self.quick)

    def planned_runs(self) -> int:
        return planned_runs(self.budget)

    def done_runs(self) -> int:
        return count_finished(self.results.cells_runs, "**")

    def run(self, launcher: str, advance: Callable[..., None]) -> StepOutcome:
        from rnnexp.study.run import Progress, run_study_child

        before = self.done_runs()
        outcome = StepOutcome(done_before=min(before, self.planned_runs()))
        if is_done(self.results, self.budget, launcher):
            return outcome
        args = ["--only", "cells", "--results", str(self.results.root.resolve()),
                "--launcher", launcher, *(["--quick"] if self.quick else [])]
        progress = Progress(self.results, study_totals(self.budget), before, advance,
                            runs=self.results.cells_runs)
        return run_study_child(self.name, self.results, args,
                               self.results.cells_logs / "rnnexp-study-cells.log", launcher,
                               progress, outcome)
