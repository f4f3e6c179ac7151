"""Loss against epoch for a table: one panel per reading, one line per setting (the median over
seeds, so one seed's spike does not draw the line) with bands for the quartiles and the min–max
range, log-scale loss, the published values as markers.

A plot is made in two steps: `plot_spec` works out everything the figure shows (plain data, no
matplotlib), `draw` turns that into a PNG. `spec_fingerprint` hashes a spec together with this
module's source and the matplotlib version, so a caller can skip drawing a plot whose PNG already
shows exactly that (matplotlib is imported only when something is drawn).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import textwrap
import warnings
from importlib import metadata
from pathlib import Path
from typing import Optional

import numpy as np

from rnnexp.results import atomic_write_bytes
from rnnexp.collect import Collection
from rnnexp.sweeps import Sweep, canonical
from rnnexp.tables import TableResult, cells_of

LOSS_FLOOR = 1e-12  # a loss of exactly 0 is drawn here on the log scale


def setting_label(sweep: Sweep, grid: dict) -> str:
    """How a setting reads in a legend: the table's own row/column labels, e.g. "hidden size 20"."""
    parts = []
    for axis in (sweep.layout.rows, sweep.layout.columns):
        if axis.key in grid:
            i = [canonical(v) for v in axis.values].index(canonical(grid[axis.key]))
            label = axis.labels[i]
            if label == str(axis.values[i]):  # a bare value: say what it is
                label = f"{axis.label} {label}"
            parts.append(label.removeprefix("loss "))  # "loss with bias" -> "with bias"
    return ", ".join(parts) or sweep.layout.rows.labels[0]


def loss_curves(result: TableResult, collection: Collection, reading: str) -> list[dict]:
    """Per setting of a reading: epochs, mean / min / max loss over seeds, and its grid values."""
    curves = []
    values = result.values[result.values.reading == reading]
    for setting in result.sweep.settings():
        if setting.reading != reading:
            continue
        grid = dict(setting.grid)
        runs = _runs_of_setting(result, values, grid)
        if not runs:
            continue
        histories = [collection.history(r) for r in runs]
        word = str(dict(setting.values).get("word", ""))
        scale = result.sweep.reading(reading).loss_scale(word)  # as the reading prints a loss
        # the epochs the histories hold (a long run's record keeps some of them: rnnexp.record)
        epochs = np.unique(np.concatenate([h["epoch"].to_numpy(np.int64) for h in histories]))
        stack = np.full((len(runs), len(epochs)), np.nan)  # (seeds, epochs), NaN after a stop
        for i, h in enumerate(histories):
            stack[i, np.searchsorted(epochs, h["epoch"].to_numpy(np.int64))] = \
                h["loss"].to_numpy(float) * scale
        stack = np.maximum(stack, LOSS_FLOOR)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an epoch where every seed is NaN
            quartiles = np.percentile(stack, [25, 50, 75], axis=0)
            gaps = np.isnan(stack).any(axis=0)  # epochs some seed did not reach (a quick path)
            if gaps.any():
                quartiles[:, gaps] = np.nanpercentile(stack[:, gaps], [25, 50, 75], axis=0)
            low, median, high = quartiles
            curves.append({"grid": grid, "epochs": epochs, "n": len(runs), "median": median,
                           "q1": low, "q3": high, "min": np.nanmin(stack, 0),
                           "max": np.nanmax(stack, 0)})
    return curves


def _runs_of_setting(result: TableResult, values, grid: dict) -> list[str]:
    layout = result.sweep.layout
    mask = np.ones(len(values), bool)
    for axis, col in ((layout.rows, "row"), (layout.columns, "col")):
        if axis.key in grid:
            i = [canonical(v) for v in axis.values].index(canonical(grid[axis.key]))
            mask &= (values[col] == i).to_numpy()
    return sorted(set(values.run_dir[mask]))


def published_points(sweep: Sweep, grid: dict) -> list[tuple[int, float]]:
    """(epoch, value) of the published losses that belong to a setting."""
    points = []
    for r, c, metric, epoch in cells_of(sweep.layout, grid):
        if metric in ("loss", "final_loss"):
            p = sweep.published[r][c]
            points.append((epoch or sweep.epochs, max(p.value, p.floor)))
    return points


def plot_spec(result: TableResult, collection: Collection) -> dict:
    """Everything plot_table draws for a table, as plain data (arrays included)."""
    sweep = result.sweep
    readings = [r.name for r in sweep.readings]
    ncols = min(2, len(readings))
    nrows = (len(readings) + ncols - 1) // ncols
    width = max(6.4 * ncols, 9.5)  # wide enough for the title and a legend row
    converge_line = "epochs_to_converge" in (sweep.layout.columns.values + sweep.layout.rows.values)
    panels, n_seeds = [], set()
    for reading in readings:
        curves = []
        for curve in loss_curves(result, collection, reading):
            curves.append({"label": f"{setting_label(sweep, curve['grid'])}",
                           "epochs": curve["epochs"], "median": curve["median"],
                           "q1": curve["q1"], "q3": curve["q3"], "min": curve["min"],
                           "max": curve["max"],
                           "published": published_points(sweep, curve["grid"])})
            n_seeds.add(curve["n"])
        best = " (best fit)" if result.best_reading == reading and sweep.ambiguous else ""
        panels.append({"curves": curves, "converge_line": converge_line,
                       "title": f"reading: {reading}{best}" if sweep.ambiguous else ""})
    seeds = "/".join(str(n) for n in sorted(n_seeds)) or "0"
    title = sweep.title + (f" (quick mode: {sweep.epochs} epochs)" if sweep.quick else "")
    key = (f"line: median over {seeds} seed{'s' if seeds != '1' else ''}, bands: quartiles and "
           f"min–max over seeds, ◇: published (a printed 0 drawn at its rounding limit)")
    chars = int(width * 11)  # characters per title line at this font size
    return {"nrows": nrows, "ncols": ncols, "width": width, "panels": panels,
            "suptitle": "\n".join(textwrap.wrap(title, chars) + textwrap.wrap(key, chars))}


def spec_fingerprint(spec: dict, environment: Optional[str] = None) -> str:
    """sha256 of a spec, of this module's code and of the matplotlib that would draw it
    (`environment`: matplotlib_environment(), where the caller has it already): equal
    fingerprints draw equal PNGs."""
    def plain(x):
        if isinstance(x, np.ndarray):
            data = hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest()
            return f"<array {x.dtype.str} {x.shape} {data}>"
        if isinstance(x, dict):
            return {k: plain(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [plain(v) for v in x]
        if isinstance(x, (np.generic,)):
            return repr(x.item())
        return repr(x) if isinstance(x, float) else x

    h = hashlib.sha256()
    h.update(json.dumps(plain(spec), sort_keys=True, ensure_ascii=False).encode("utf-8"))
    h.update(Path(__file__).read_bytes())
    h.update((environment if environment is not None else matplotlib_environment()).encode("utf-8"))
    return h.hexdigest()


def matplotlib_environment() -> str:
    """The versions of matplotlib (and of what it draws with) and any matplotlibrc it would read
    besides its own default, found without importing matplotlib: what else decides the PNG."""
    parts = []
    for name in ("matplotlib", "numpy", "pillow"):  # pillow writes the PNG
        try:
            parts.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{name} ?")
    candidates = [Path.cwd() / "matplotlibrc"]
    if os.environ.get("MATPLOTLIBRC"):
        rc = Path(os.environ["MATPLOTLIBRC"])
        candidates += [rc, rc / "matplotlibrc"]
    config = os.environ.get("MPLCONFIGDIR") or os.path.join(
        os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config"), "matplotlib")
    candidates += [Path(config) / "matplotlibrc",
                   Path(os.path.expanduser("~/.matplotlib")) / "matplotlibrc"]
    for rc in candidates:
        try:
            parts.append(f"{rc}:{hashlib.sha256(rc.read_bytes()).hexdigest()}")
        except OSError:
            pass
    return "\n".join(parts)


def draw(spec: dict, path: Path) -> Path:
    """The PNG of a spec (plot_spec), written atomically to `path`."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    ncols, nrows, width = spec["ncols"], spec["nrows"], spec["width"]
    panels = spec["panels"]
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, 4.4 * nrows + 0.6), squeeze=False,
                             sharey=True)
    for ax, panel in zip(axes.flat, panels):
        curves = panel["curves"]
        for i, curve in enumerate(curves):
            color = f"C{i}"
            ax.plot(curve["epochs"], curve["median"], color=color, lw=1.4, label=curve["label"])
            ax.fill_between(curve["epochs"], curve["q1"], curve["q3"], color=color, alpha=0.25,
                            lw=0)
            ax.fill_between(curve["epochs"], curve["min"], curve["max"], color=color, alpha=0.1,
                            lw=0)
            for epoch, value in curve["published"]:
                ax.plot([epoch], [value], marker="D", ms=7, mfc="white", mec=color, mew=1.8,
                        ls="none")
        if panel["converge_line"]:
            ax.axhline(5e-5, color="grey", ls=":", lw=1)
            ax.text(1, 5e-5, " converged below 5e-5", color="grey", va="bottom", fontsize=8)
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.grid(True, which="major", alpha=0.3)
        ax.set_title(panel["title"], fontsize=10)
        if curves:
            ax.plot([], [], marker="D", mfc="white", mec="black", ls="none", label="published")
        else:
            ax.text(0.5, 0.5, "no runs yet", transform=ax.transAxes, ha="center", color="grey")
    for ax in axes[:, 0]:
        ax.set_ylabel("training loss (log scale)")
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle(spec["suptitle"], fontsize=11)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles:  # one legend below the panels: every panel has the same settings and colours
        fig.legend(handles, labels, loc="lower center", ncol=min(4, len(handles)), fontsize=9,
                   frameon=False)
    rows_of_legend = (len(handles) + 3) // 4
    fig.tight_layout(rect=(0, 0.3 * rows_of_legend / fig.get_figheight() + 0.01, 1, 1))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(Path(path), buf.getvalue())
    return Path(path)


def plot_table(result: TableResult, collection: Collection, path: Path) -> Path:
    return draw(plot_spec(result, collection), path)
