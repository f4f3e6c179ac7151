"""End-of-study files of an Optuna study: optimization_results.yaml, trials.csv and PNG plots.
The sweeper writes them when a study ends; rnnexp-study rewrites them with its own titles."""
from __future__ import annotations

import logging
import shutil
import threading
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import optuna
from omegaconf import OmegaConf
from optuna.trial import TrialState

from rnnexp.results import atomic_path

log = logging.getLogger(__name__)

RESULTS_YAML = "optimization_results.yaml"
TRIALS_CSV = "trials.csv"
# the plots a study can draw (pareto_front only with 2 or 3 objectives), and those it draws unless
# asked for others: param_importances (fANOVA) costs seconds on a few hundred trials
PLOTS = ("optimization_history", "param_importances", "slice", "pareto_front")
DEFAULT_PLOTS = ("optimization_history", "slice", "pareto_front")


def write_results(study: optuna.Study, out_dir: Path, objective_names: list[str],
                  plots: Sequence[str] = PLOTS) -> list[Path]:
    """Write every result file into out_dir, and the plots named in `plots`; return their paths."""
    return write_tables(study, out_dir) + write_plots(study, out_dir, objective_names, plots)


def write_tables(study: optuna.Study, out_dir: Path) -> list[Path]:
    """optimization_results.yaml and trials.csv."""
    out_dir.mkdir(parents=True, exist_ok=True)
    return [_write_summary(study, out_dir / RESULTS_YAML), _write_trials(study, out_dir / TRIALS_CSV)]


def results_are_current(study: optuna.Study, out_dir: Path) -> bool:
    """Whether out_dir's optimization_results.yaml is what the study would write now: its name,
    every trial counted in its state, and the same best trial (a resumed study that ran nothing
    need not rewrite its files; a study run anew beside the files of an earlier one, as in a
    fresh clone with committed results, may count as many trials and must still rewrite them)."""
    try:
        written = OmegaConf.to_container(OmegaConf.load(out_dir / RESULTS_YAML))
    except (OSError, ValueError, AttributeError):
        return False
    return written == OmegaConf.to_container(OmegaConf.create(summarize(study)))


def copy_results(paths: list[Path], dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for p in paths:
        with atomic_path(dest / p.name) as tmp:
            shutil.copy2(p, tmp)


def summarize(study: optuna.Study) -> dict[str, Any]:
    trials = study.get_trials(deepcopy=False)
    counts = {s.name.lower(): sum(t.state == s for t in trials) for s in TrialState}
    summary: dict[str, Any] = {
        "study_name": study.study_name,
        "directions": [d.name.lower() for d in study.directions],
        "trials": {k: v for k, v in counts.items() if v},
    }
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if not complete:
        summary["note"] = "no trial completed"
    elif len(study.directions) == 1:
        best = study.best_trial
        summary.update(name="optuna", best_params=best.params, best_value=best.value,
                       best_trial=best.number)
    else:
        summary["name"] = "optuna"
        summary["solutions"] = [
            {"params": t.params, "values": t.values, "trial": t.number} for t in study.best_trials
        ]
    return summary


def _write_summary(study: optuna.Study, path: Path) -> Path:
    with atomic_path(path) as tmp:
        OmegaConf.save(OmegaConf.create(summarize(study)), tmp)
    return path


def _write_trials(study: optuna.Study, path: Path) -> Path:
    with atomic_path(path) as tmp:
        study.trials_dataframe().to_csv(tmp, index=False)
    return path


def import_plotting() -> None:
    """What write_plots imports (matplotlib with its Agg backend, Optuna's matplotlib plots):
    half a second, which a sweep whose trials train in another process spends while it waits
    for them (`preload_plotting`) rather than at the end."""
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot  # noqa: F401
    from optuna.visualization import matplotlib as ovm  # noqa: F401


_importing: list[threading.Thread] = []  # preload_plotting's thread, while it may still run


def preload_plotting(plots: Sequence[str]) -> None:
    """import_plotting in a thread of its own, if `plots` asks for any: write_plots, importing
    the same modules later, waits for that import to finish instead of starting its own. A
    process that forks afterwards calls plotting_preloaded() first."""
    if plots and not _importing:
        thread = threading.Thread(target=import_plotting, name="import-plotting", daemon=True)
        _importing.append(thread)
        thread.start()


def plotting_preloaded() -> None:
    """Wait for preload_plotting's thread, if one runs: a process forked while another thread is
    inside an import would inherit that module's import lock, held by a thread it does not have,
    and hang on importing the same module."""
    while _importing:
        _importing[0].join()
        _importing.pop()


def write_plots(study: optuna.Study, out_dir: Path, objective_names: list[str],
                wanted: Sequence[str] = PLOTS) -> list[Path]:
    """The plots named in `wanted` that the study can draw, as PNG files in out_dir."""
    if not wanted:
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    import_plotting()
    # matplotlib says at INFO that it draws a categorical's numeric-looking choices as categories,
    # which is what a choice is
    logging.getLogger("matplotlib.category").setLevel(logging.WARNING)
    from optuna.visualization import matplotlib as ovm

    n_complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    multi = len(study.directions) > 1
    # multi-objective: the single-objective plots show the first objective
    target = (lambda t: t.values[0]) if multi else None
    name = objective_names[0]
    plots: dict[str, tuple[int, Callable[[], Any]]] = {  # file -> (complete trials needed, plot)
        "optimization_history.png": (1, lambda: ovm.plot_optimization_history(
            study, target=target, target_name=name)),
        "param_importances.png": (2, lambda: ovm.plot_param_importances(
            study, target=target, target_name=name)),
        "slice.png": (1, lambda: ovm.plot_slice(study, target=target, target_name=name)),
    }
    if multi and len(study.directions) in (2, 3):
        plots["pareto_front.png"] = (1, lambda: ovm.plot_pareto_front(
            study, target_names=objective_names))
    written = []
    for filename, (needed, plot) in plots.items():
        if filename.removesuffix(".png") not in wanted:
            continue
        if n_complete < needed:
            log.info("skipped %s: %d completed trial(s), it needs %d", filename, n_complete, needed)
            continue
        path = _save_plot(plot, out_dir / filename)
        if path is not None:
            written.append(path)
    return written


def _save_plot(plot: Callable[[], Any], path: Path) -> Path | None:
    import matplotlib.pyplot as plt
    import numpy as np

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
            axes = plot()
    except Exception as err:  # noqa: BLE001 - a plot is a nicety; the study's results stand
        log.info("skipped %s: %s", path.name, err)
        plt.close("all")
        return None
    fig = np.ravel(axes)[0].figure
    with atomic_path(path) as tmp:  # the suffix stays .png: savefig picks the format from it
        fig.savefig(tmp, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path
