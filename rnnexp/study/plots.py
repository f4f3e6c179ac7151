"""The study's figures: the search's history and slice plots (Optuna's, retitled), the loss
curves of the validated settings, and the sampler comparison. Files only, never a window."""
from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

from rnnexp.study.spec import OBJECTIVE_NAME


# ------------------------------------------------------------------------------ the search
def plot_optimization_history(study_obj, path: Path) -> None:
    """Optuna's history plot, wider, with the budget's meaning in the title."""
    from optuna.visualization import matplotlib as ovm

    ax = _optuna_plot(lambda: ovm.plot_optimization_history(study_obj, target_name=OBJECTIVE_NAME))
    ax.figure.set_size_inches(9, 5)
    ax.legend(loc="upper right")
    ax.set_title(f"Optimization history: {len(study_obj.trials)} trials, "
                 "above the budget some seed did not converge")
    _save(ax.figure, path)


def plot_best_slice(same, best_params: dict, path: Path) -> None:
    """Optuna's slice plot of `same` (the best optimizer's trials) over that optimizer's own
    arguments, one panel each."""
    from optuna.visualization import matplotlib as ovm

    params = [k for k in best_params if k != "optimizer"]
    axes = _optuna_plot(lambda: ovm.plot_slice(same, params=params, target_name=OBJECTIVE_NAME))
    fig = np.ravel(axes)[0].figure
    fig.set_size_inches(3.4 * len(params), 4.2)
    fig.suptitle(f"Slice plot: the {len(same.trials)} {best_params['optimizer']} trials")
    _save(fig, path)


def _optuna_plot(plot):
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
        return plot()


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


# ------------------------------------------------------------------------------ validation
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


# ------------------------------------------------------------------------------ samplers
def plot_sampler_comparison(long: pd.DataFrame, budget_epochs: int, startup: int,
                            path: Path) -> Path:
    """Best-so-far objective against trial number per sampler, one panel per space: the mean over
    study seeds, and the min-max band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    spaces = list(dict.fromkeys(long.space))
    colors = {"tpe": "tab:blue", "random": "tab:orange", "gp": "tab:green", "cmaes": "tab:red"}
    with plt.style.context("default"):
        fig, axes = plt.subplots(1, len(spaces), figsize=(7 * len(spaces), 4.8), sharey=True,
                                 squeeze=False)
        for ax, space in zip(axes[0], spaces):
            groups = list(long[long.space == space].groupby("sampler", sort=False))
            # the first sampler (TPE) drawn last, on top: it equals random search until `startup`
            for sampler, df in reversed(groups):
                color = colors.get(sampler, "tab:gray")
                wide = df.pivot(index="trial", columns="study_seed", values="best_so_far")  # (trials, seeds)
                wide = wide.replace(np.inf, np.nan)  # no completed trial yet: nothing to draw
                ax.fill_between(wide.index, wide.min(axis=1), wide.max(axis=1), color=color,
                                alpha=0.15, linewidth=0, step="post")
                ax.plot(wide.index, wide.mean(axis=1), color=color, linewidth=2,
                        drawstyle="steps-post",
                        label=f"{sampler}: mean of {wide.shape[1]} study seeds (band: min–max)")
            ax.axhline(budget_epochs, color="gray", linestyle="--", linewidth=1,
                       label=f"{budget_epochs} epochs: above, some seed did not converge")
            ax.axvline(startup + 0.5, color="gray", linestyle=":", linewidth=1,
                       label=f"TPE's first {startup} trials are random (random search's own)")
            ax.xaxis.get_major_locator().set_params(integer=True)
            ax.set_xlabel("trial")
            ax.set_title(f"{space}: {', '.join(s for s, _ in groups)}")
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=8)
        axes[0][0].set_ylabel("best so far: slowest seed's epochs to converge")
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return path
