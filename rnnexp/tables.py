"""A sweep's runs -> its table: a value per (reading, row, column, seed), cells as mean ± sd over
seeds beside the published value, and how well each reading fits the published numbers.

Runs are matched to a table by their whole config (every key but the seed and the settings that do
not change the numbers), not by the folder they sit in: a run made by hand with the same settings
counts, a run with any other setting does not.
"""
from __future__ import annotations

import math
import warnings
from collections import Counter
from dataclasses import dataclass
from typing import Optional

import numpy as np
import pandas as pd

from rnnexp.collect import Collection
from rnnexp.sweeps import EPOCH, METRIC, METRICS, Sweep, canonical, expected_configs

# config keys that do not change a run's numbers
LOSSES = ("loss", "final_loss", "min_loss")  # metrics a reading's printing (per step) scales
IGNORED_KEYS = ("seed", "device", "train.skip_done", "train.checkpoint", "train.max_word_length")


@dataclass
class TableResult:
    sweep: Sweep
    values: pd.DataFrame  # long: reading, row, col, seed, value, generated, spells_word, run_dir
    cells: pd.DataFrame  # one per (reading, row, col): mean, sd, n, min, max, published, ...
    fit: pd.DataFrame  # one per reading: log_distance, cells, best

    @property
    def best_reading(self) -> Optional[str]:
        for best, reading in zip(self.fit["best"].tolist(), self.fit["reading"].tolist()):
            if best:  # the first reading marked best (what fit[fit.best].reading.iloc[0] is)
                return str(reading)
        return None


# ---------------------------------------------------------------- matching runs to settings

def matching_runs(frame: pd.DataFrame, config: dict) -> pd.DataFrame:
    """Rows of `frame` whose config equals `config` on every key that changes the numbers."""
    mask = pd.Series(True, index=frame.index)
    for key, value in config.items():
        if key in IGNORED_KEYS:
            continue
        if key not in frame:
            return frame.iloc[0:0]
        want = canonical(value)
        mask &= frame[key].map(lambda v, w=want: canonical(v) == w)
    return frame[mask]


def setting_runs(sweep: Sweep, collection: Collection,
                 configs: Optional[list[dict]] = None) -> list[tuple]:
    """(setting, runs of that setting, one per seed) for every setting of the sweep. `configs`:
    expected_configs(sweep)'s configs where the caller has them already (in settings order)."""
    out = []
    for setting, config in _settings_with_configs(sweep, configs):
        rows = _setting_rows(collection, config)
        if rows is None:  # the same run twice counts once
            runs = _matching_runs_indexed(collection, config)
            runs = runs.sort_values("run_dir").drop_duplicates("seed")
        else:
            runs = collection.runs.iloc[rows]
        out.append((setting, runs))
    return out


def _settings_with_configs(sweep: Sweep, configs: Optional[list[dict]]) -> list[tuple]:
    if configs is None:
        return expected_configs(sweep)
    return list(zip(sweep.settings(), configs, strict=True))


def _matching_rows(collection: Collection, config: dict) -> Optional[list[int]]:
    """Positions in collection.runs of the rows matching_runs(collection.runs, config) keeps, by
    looking the config up in an index of the runs by the canonical values of the config's keys
    (built once per key set and kept on the collection); None where that cannot be done."""
    frame = collection.runs
    keys = tuple(k for k in config if k not in IGNORED_KEYS)
    if any(k not in frame for k in keys):
        return []
    memo = collection._memo
    index = memo.get(("runs by config", keys))
    if index is None:
        columns = []
        for key in keys:
            column = memo.get(("canonical", key))
            if column is None:
                column = memo[("canonical", key)] = [canonical(v) for v in frame[key].tolist()]
            columns.append(column)
        index = {}
        try:
            for i, values in enumerate(zip(*columns)) if columns else enumerate([()] * len(frame)):
                index.setdefault(values, []).append(i)
        except TypeError:  # a value without a hash: compare one by one
            index = False
        memo[("runs by config", keys)] = index
    if index is False:
        return None
    try:
        return index.get(tuple(canonical(config[k]) for k in keys), [])
    except TypeError:
        return None


def _matching_runs_indexed(collection: Collection, config: dict) -> pd.DataFrame:
    """matching_runs(collection.runs, config), through the index where it can be used."""
    rows = _matching_rows(collection, config)
    frame = collection.runs
    return matching_runs(frame, config) if rows is None else frame.iloc[rows]


def _setting_rows(collection: Collection, config: dict) -> Optional[list[int]]:
    """Positions of the runs that setting_runs keeps for a config: the matching runs sorted by run
    dir, the first of each seed. None where only pandas' own sort and dedup can say."""
    frame = collection.runs
    if "seed" not in frame or "run_dir" not in frame:
        return None
    rows = _matching_rows(collection, config)
    if rows is None:
        return None
    memo = collection._memo
    if "run_dir list" not in memo:
        memo["run_dir list"] = frame["run_dir"].tolist()
        memo["seed list"] = frame["seed"].tolist()
    run_dirs, seeds = memo["run_dir list"], memo["seed list"]
    if not all(isinstance(run_dirs[i], str) for i in rows):
        return None
    kept, seen = [], set()
    try:
        for i in sorted(rows, key=run_dirs.__getitem__):
            seed = seeds[i]
            seed = None if isinstance(seed, float) and math.isnan(seed) else seed
            if seed not in seen:
                seen.add(seed)
                kept.append(i)
    except TypeError:
        return None
    return kept


# ---------------------------------------------------------------- values

def _metric_value(run, metric: str, epoch: Optional[int], collection: Collection) -> float:
    """run: a row of collection.runs (a Series, or a dict of its values)."""
    if metric == "loss" and epoch is not None:
        history = collection.history(run["run_dir"])
        # history.loss[history.epoch == epoch], without a pandas mask per cell
        at = history["loss"].to_numpy()[history["epoch"].to_numpy() == epoch]
        return float(at[0]) if len(at) else math.nan
    key = "final_loss" if metric == "loss" else metric
    value = run.get(key)
    return math.nan if value is None or pd.isna(value) else float(value)


def _runs_as_dicts(collection: Collection, setting_config: dict) -> list:
    """The runs setting_runs keeps for a config, each as {column: value} with the values
    DataFrame.iterrows gives (both read DataFrame.values)."""
    rows = _setting_rows(collection, setting_config)
    if rows is None:
        runs = _matching_runs_indexed(collection, setting_config)
        runs = runs.sort_values("run_dir").drop_duplicates("seed")
        return [run for _, run in runs.iterrows()]
    memo = collection._memo
    if "values" not in memo:
        memo["values"] = collection.runs.values
        memo["columns"] = list(collection.runs.columns)
    values, columns = memo["values"], memo["columns"]
    return [dict(zip(columns, values[i])) for i in rows]


def table_values(sweep: Sweep, collection: Collection,
                 configs: Optional[list[dict]] = None) -> pd.DataFrame:
    """One row per (reading, row, column, seed) of the table, with the run it came from."""
    layout = sweep.layout
    records = []
    for setting, config in _settings_with_configs(sweep, configs):
        grid = dict(setting.grid)
        cells = list(cells_of(layout, grid))
        reading = sweep.reading(setting.reading)
        for run in _runs_as_dicts(collection, config):
            scale = reading.loss_scale(str(run.get("word", "")))  # as the reading prints a loss
            for r, c, metric, epoch in cells:
                value = _metric_value(run, metric, epoch, collection)
                records.append({
                    "reading": setting.reading, "row": r, "col": c, "seed": int(run["seed"]),
                    "value": value * scale if metric in LOSSES else value,
                    "generated": run.get("generated"), "spells_word": bool(run.get("spells_word")),
                    "run_dir": run["run_dir"]})
    columns = ["reading", "row", "col", "seed", "value", "generated", "spells_word", "run_dir"]
    return pd.DataFrame.from_records(records, columns=columns)


def cells_of(layout, grid: dict):
    """(row index, column index, metric, epoch) of every table cell that a setting whose varied
    values are `grid` fills (epoch None: the run's last)."""
    for r, row in enumerate(layout.rows.values):
        for c, col in enumerate(layout.columns.values):
            axes = {layout.rows.key: row, layout.columns.key: col}
            if any(k in grid and canonical(grid[k]) != canonical(v) for k, v in axes.items()):
                continue
            yield r, c, axes.get(METRIC, layout.metric), axes.get(EPOCH, layout.at_epoch)


# ---------------------------------------------------------------- cells and fit

def log_distance(reproduced: float, published, floor: Optional[float] = None) -> float:
    """|log10 reproduced - log10 published|; both are raised to `floor` first (half a unit of the
    last printed digit), so a printed 0.00000 matches anything below 5e-6."""
    value = published.value if hasattr(published, "value") else float(published)
    floor = published.floor if floor is None and hasattr(published, "floor") else (floor or 1e-12)
    if not np.isfinite(reproduced):
        return math.nan
    return abs(math.log10(max(reproduced, floor)) - math.log10(max(value, floor)))


def _mode(strings) -> tuple[Optional[str], int]:
    counts = Counter(s for s in strings if isinstance(s, str))
    if not counts:
        return None, 0
    return counts.most_common(1)[0]


def table_cells(sweep: Sweep, values: pd.DataFrame) -> pd.DataFrame:
    layout = sweep.layout
    records = []
    groups = _positions(values, ("reading", "row", "col"))
    for reading in (r.name for r in sweep.readings):
        for r in range(len(layout.rows.values)):
            for c in range(len(layout.columns.values)):
                v = values.iloc[groups.get((reading, r, c), [])]
                finite = v.value[np.isfinite(v.value.astype(float))]
                published = sweep.published[r][c]
                mean = float(finite.mean()) if len(finite) else math.nan
                generated, _ = _mode(v.generated)
                records.append({
                    "reading": reading, "row": r, "col": c,
                    "row_label": layout.rows.labels[r], "col_label": layout.columns.labels[c],
                    "mean": mean, "sd": float(finite.std(ddof=1)) if len(finite) > 1 else math.nan,
                    "min": float(finite.min()) if len(finite) else math.nan,
                    "max": float(finite.max()) if len(finite) else math.nan,
                    "n": int(len(finite)), "runs": int(len(v)),
                    "published": published.value, "published_text": published.text,
                    "log_distance": log_distance(mean, published),
                    "generated": generated, "spelled": int(v.spells_word.sum()),
                })
    return pd.DataFrame.from_records(records)


def _positions(frame: pd.DataFrame, columns: tuple[str, ...]) -> dict[tuple, list[int]]:
    """Positions of the rows of each combination of `columns`' values, in frame order: the rows
    frame[(frame.a == x) & (frame.b == y)] selects are frame.iloc[positions[(x, y)]]."""
    out: dict[tuple, list[int]] = {}
    for i, key in enumerate(zip(*(frame[c].tolist() for c in columns))):
        out.setdefault(key, []).append(i)
    return out


def seed_matrix(values: pd.DataFrame, reading: str, n_rows: int, n_cols: int,
                seeds: list[int]) -> np.ndarray:
    """(cells, seeds) values of one reading, cells in row-major order; a missing run is NaN, a run
    that diverged (a NaN or infinite value) is +inf: worse than any run that kept a number."""
    out = np.full((n_rows * n_cols, len(seeds)), np.nan)
    where = {s: i for i, s in enumerate(seeds)}
    v = values[values.reading == reading]
    for r, c, seed, value in zip(v.row, v.col, v.seed, v.value.astype(float)):
        out[r * n_cols + c, where[int(seed)]] = value if np.isfinite(value) else np.inf
    return out


def fit_statistic(matrix: np.ndarray, published: np.ndarray, floors: np.ndarray):
    """The distance of a reading to the published numbers, as a function of resampled seeds
    (rnnexp.stats.bootstrap): per cell |log10 median over the seeds - log10 published| (each
    raised to its printed rounding limit first), averaged over the cells. A median over seeds, so
    one seed (a spike, a divergence) cannot move a cell far."""
    log_pub = np.log10(np.maximum(published, floors))[:, None]

    median = np.nanmedian if np.isnan(matrix).any() else np.median  # (np.median is quicker)

    def statistic(idx: np.ndarray) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a cell without runs: NaN
            med = median(matrix[:, idx], axis=2)  # (cells, resamples)
        with np.errstate(invalid="ignore", divide="ignore"):
            dist = np.abs(np.log10(np.maximum(med, floors[:, None])) - log_pub)
        return dist.mean(axis=0)
    return statistic


def reading_fit(sweep: Sweep, values: pd.DataFrame, cells: pd.DataFrame) -> pd.DataFrame:
    """How far each reading lies from the published values (fit_statistic), with a bootstrap 95 %
    interval over seeds; the reading with the smallest distance is the best fit (only where every
    reading has all its cells), and a reading whose interval overlaps the best's is too close to
    call against it."""
    from rnnexp.stats import bootstrap

    layout = sweep.layout
    n_rows, n_cols = len(layout.rows.values), len(layout.columns.values)
    published = np.array([p.value for row in sweep.published for p in row], float)
    floors = np.array([p.floor for row in sweep.published for p in row], float)
    seeds = sorted({int(x) for x in values.seed}) if len(values) else []
    records = []
    for reading in (r.name for r in sweep.readings):
        c = cells[cells.reading == reading]
        filled = int((c.n > 0).sum())
        estimate = low = high = math.nan
        if seeds and filled == len(c):
            matrix = seed_matrix(values, reading, n_rows, n_cols, seeds)
            estimate, low, high = bootstrap(fit_statistic(matrix, published, floors), len(seeds))
        records.append({"reading": reading, "log_distance": float(estimate), "low": float(low),
                        "high": float(high), "cells": filled, "of": int(len(c)),
                        "seeds": len(seeds)})
    fit = pd.DataFrame.from_records(records)
    fit["best"] = False
    fit["too_close"] = False
    if len(fit) and ((fit.cells == fit.of) & np.isfinite(fit.log_distance)).all():
        best = fit.log_distance.idxmin()
        fit.loc[best, "best"] = True
        others = fit.index != best
        fit.loc[others, "too_close"] = (fit.low[others] <= fit.high[best]).to_numpy()
    return fit


def build_table(sweep: Sweep, collection: Collection,
                configs: Optional[list[dict]] = None) -> TableResult:
    """The table of a sweep; `configs`: its settings' expected configs, where already known."""
    values = table_values(sweep, collection, configs)
    cells = table_cells(sweep, values)
    return TableResult(sweep, values, cells, reading_fit(sweep, values, cells))


# ---------------------------------------------------------------- presentation

def fmt_value(x: float, metric: str = "loss") -> str:
    if x is None or not np.isfinite(x):
        return "–"
    if metric == "epochs_to_converge":
        return f"{x:.0f}" if abs(x - round(x)) < 1e-9 else f"{x:.1f}"
    return f"{x:.3g}"


def fmt_cell(cell: pd.Series, metric: str = "loss") -> str:
    """"mean ± sd (n=5)"; no runs: "no runs"."""
    if cell.n == 0:
        return "no runs" if cell.runs == 0 else f"not reached (0/{cell.runs})"
    text = fmt_value(cell["mean"], metric)
    if cell.n > 1:
        text += f" ± {fmt_value(cell.sd, metric) if metric == 'epochs_to_converge' else f'{cell.sd:.2g}'}"
    if cell.n < cell.runs:  # e.g. runs that never converged
        return f"{text} (n={cell.n} of {cell.runs})"
    return f"{text} (n={cell.n})"


def cell_metric(sweep: Sweep, r: int, c: int) -> str:
    layout = sweep.layout
    axes = {layout.rows.key: layout.rows.values[r], layout.columns.key: layout.columns.values[c]}
    return axes.get(METRIC, layout.metric)


def table_csv(result: TableResult) -> pd.DataFrame:
    """The table as the report lays it out, one block of rows per reading; for every report column
    its mean, sd, n and published value."""
    sweep, cells = result.sweep, result.cells
    layout = sweep.layout
    records = []
    for (reading, r), block in cells.groupby(["reading", "row"], sort=False):
        rec = {"reading": reading, layout.rows.label or "row": layout.rows.labels[r]}
        for _, cell in block.iterrows():
            name = cell.col_label
            rec[f"{name} mean"] = cell["mean"]
            rec[f"{name} sd"] = cell.sd
            rec[f"{name} n"] = cell.n
            rec[f"{name} published"] = cell.published_text
        if layout.generated:
            rec["generated (most common)"] = block.generated.iloc[0]
            rec["seeds spelling the word"] = int(block.spelled.iloc[0])
        records.append(rec)
    return pd.DataFrame.from_records(records)


def table_markdown(result: TableResult, reading: str) -> str:
    """One reading's table: the report's rows and columns, each reproduced beside published."""
    sweep = result.sweep
    layout = sweep.layout
    cells = result.cells[result.cells.reading == reading]
    word = dict(sweep.fixed).get("word", "")
    header = [layout.rows.label or " "]
    for label in layout.columns.labels:
        header += [f"{label}: reproduced", "published"]
    if layout.generated:
        header += ["generates (most common)", f"seeds spelling {word!r}"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    at = _positions(cells, ("row", "col"))
    for r, row_label in enumerate(layout.rows.labels):
        row = [row_label]
        for c in range(len(layout.columns.values)):
            cell = cells.iloc[at[(r, c)][0]]
            row += [fmt_cell(cell, cell_metric(sweep, r, c)), cell.published_text]
        if layout.generated:
            first = cells.iloc[_first_of_row(at, r)]
            row += [f"`{first.generated}`" if first.generated else "–",
                    f"{first.spelled}/{first.runs}"]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def _first_of_row(at: dict[tuple, list[int]], r: int) -> int:
    """Position of the first cell of row r (what cells[cells.row == r].iloc[0] is)."""
    return min(positions[0] for (row, _), positions in at.items() if row == r)


def _interval(low: float, high: float) -> str:
    return "–" if not (np.isfinite(low) and np.isfinite(high)) else f"{low:.2f}–{high:.2f}"


def fit_markdown(result: TableResult) -> str:
    fit = result.fit
    lines = ["| reading | log10-distance to published | 95 % CI | cells |", "|---|---|---|---|"]
    for _, f in fit.iterrows():
        dist = "–" if not np.isfinite(f.log_distance) else f"{f.log_distance:.2f}"
        name = (f"**{f.reading}** (best fit)" if f.best else
                f"{f.reading} (too close to call)" if f.too_close else f.reading)
        lines.append(f"| {name} | {dist} | {_interval(f.low, f.high)} | {f.cells}/{f.of} |")
    n = int(fit.seeds.max()) if len(fit) else 0
    lines += ["", f"Distance: per cell, |log10 of the median over the {n} seeds − log10 of the "
              "published value|, averaged over the cells (0: every median equals its published "
              "value, 1: a factor of 10 off); interval: 95 % bootstrap over seeds. A reading whose "
              "interval overlaps the best fit's is too close to call against it."]
    return "\n".join(lines) + "\n"


def fit_verdict(result: TableResult) -> str:
    """One sentence: which reading the published numbers fit, by how much, how sure."""
    fit = result.fit.sort_values("log_distance")
    best = result.best_reading
    if best is None:
        return "Not every reading has runs in every cell yet, so no reading is picked."
    first = fit.iloc[0]
    n = int(first.seeds)
    text = (f"The published numbers fit **{best}** best: its seeds' medians are off by a factor "
            f"of {10 ** first.log_distance:.2g} on average (log10-distance {first.log_distance:.2f}, "
            f"95 % CI {_interval(first.low, first.high)}, n = {n} seeds)")
    if len(fit) > 1:
        second = fit.iloc[1]
        text += (f", against {10 ** second.log_distance:.2g} ({second.log_distance:.2f}, "
                 f"{_interval(second.low, second.high)}) for the next best, {second.reading}")
        close = fit[fit.too_close].reading.tolist()
        if close:
            text += (f"; **too close to call** against {', '.join(close)}: the intervals "
                     "overlap, so other seeds could reverse the order")
    return text + "."
