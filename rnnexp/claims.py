"""The report's five conclusions, each checked across seeds.

Each check works on a small long-format frame (or per-run arrays), so it can be tried on made-up
numbers; `check_conclusions` builds those frames from the reproduced tables. A check counts how
often the claim holds (per seed, per setting) and says so in generated sentences.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Optional

import numpy as np
import pandas as pd

from rnnexp.collect import Collection
from rnnexp.tables import TableResult

CLAIMS = {
    1: "Loss falls as the hidden size grows, for every optimizer (Q2(i)).",
    2: "Loss with the bias terms is generally lower than without (Q1), \"with exceptions\".",
    3: "The loss can fall while the generated string is still wrong; in the end it is right.",
    4: "RMSprop converges fastest of the optimizers tried.",
    5: "With hidden 5, RMSprop (lr 0.4, alpha 0.5) converges in under 60 epochs (Q2(ii)).",
}


@dataclass
class ClaimCheck:
    number: int
    claim: str
    verdict: str  # holds | holds mostly | mostly fails | fails | no data
    summary: str  # one generated sentence with the counts
    holds: int = 0
    total: int = 0
    details: list[str] = field(default_factory=list)


def verdict(holds: int, total: int) -> str:
    if total == 0:
        return "no data"
    if holds == total:
        return "holds"
    if holds == 0:
        return "fails"
    return "holds mostly" if holds / total >= 0.5 else "mostly fails"


def _count(k: int, n: int) -> str:
    return f"{k}/{n}"


# ---------------------------------------------------------------- the checks on plain data

def check_falls_with_size(frame: pd.DataFrame, number: int = 1) -> ClaimCheck:
    """frame: group (optimizer), size, seed, value. Holds for a (group, seed) where the value falls
    strictly with every step up in size."""
    parts, k_all, n_all = [], 0, 0
    for group, g in frame.groupby("group", sort=False):
        table = g.pivot_table(index="seed", columns="size", values="value", aggfunc="first")
        table = table.sort_index(axis=1).dropna()
        falls = (np.diff(table.to_numpy(float), axis=1) < 0).all(axis=1)
        k, n = int(falls.sum()), len(falls)
        k_all, n_all = k_all + k, n_all + n
        sizes = "/".join(str(int(s)) for s in table.columns)
        parts.append(f"{group} {_count(k, n)} seeds (hidden {sizes})")
    summary = ("Loss falls strictly with hidden size for " + ", ".join(parts) + "."
               if parts else "No Q2(i) runs to check.")
    return ClaimCheck(number, CLAIMS[1], verdict(k_all, n_all), summary, k_all, n_all)


def check_lower_with_bias(frame: pd.DataFrame, number: int = 2) -> ClaimCheck:
    """frame: table, row (label), seed, with_bias, without_bias. Holds for a (table, row, seed)
    where the loss with bias is lower."""
    frame = frame.dropna(subset=["with_bias", "without_bias"])
    lower = frame.with_bias < frame.without_bias
    k, n = int(lower.sum()), len(frame)
    details = []
    for table, g in frame.groupby("table", sort=False):
        rows = []
        for row, r in g.groupby("row", sort=False):
            rows.append(f"{row}: {_count(int((r.with_bias < r.without_bias).sum()), len(r))}")
        details.append(f"{table}: lower with bias at " + "; ".join(rows) + " seeds.")
    summary = (f"The loss with the bias terms is lower than without in {_count(k, n)} "
               f"(setting, seed) pairs." if n else "No Q1 runs to check.")
    return ClaimCheck(number, CLAIMS[2], verdict(k, n), summary, k, n, details)


def spelling_lost_while_loss_fell(loss: np.ndarray, spelled: np.ndarray) -> int:
    """Epochs at which the word stopped being spelled although the loss fell."""
    loss, spelled = np.asarray(loss, float), np.asarray(spelled, bool)
    fell = np.diff(loss) < 0
    lost = spelled[:-1] & ~spelled[1:]
    return int((fell & lost).sum())


def check_spelling_vs_loss(runs: Iterable[tuple], number: int = 3) -> ClaimCheck:
    """runs: (name, loss per epoch, spelled per epoch[, spells the word after training]). The
    claim has two halves: the loss can fall while the spelling is (or turns) wrong, and in the
    end the word is right."""
    n = lost_runs = wrong_while_falling = end_right = 0
    for name, loss, spelled, *at_end in runs:
        loss, spelled = np.asarray(loss, float), np.asarray(spelled, bool)
        n += 1
        lost_runs += spelling_lost_while_loss_fell(loss, spelled) > 0
        wrong_while_falling += bool(((np.diff(loss) < 0) & ~spelled[1:]).any())
        end_right += bool(at_end[0]) if at_end else (bool(spelled[-1]) if len(spelled) else False)
    if n == 0:
        return ClaimCheck(number, CLAIMS[3], "no data", "No Q2 runs to check.")
    can_happen = lost_runs > 0 or wrong_while_falling > 0
    v = verdict(end_right, n) if can_happen else "fails"
    summary = (f"In {_count(wrong_while_falling, n)} runs the loss fell at some epoch while the "
               f"generated string was wrong; in {_count(lost_runs, n)} the string was right and "
               f"turned wrong at an epoch where the loss fell; {_count(end_right, n)} runs spell "
               f"the word after the last epoch.")
    return ClaimCheck(number, CLAIMS[3], v, summary, end_right, n)


def check_fastest(frame: pd.DataFrame, winner: str = "RMSprop", number: int = 4) -> ClaimCheck:
    """frame: comparison (e.g. "Q2(ii) lr 0.4"), seed, group (optimizer), value (lower = faster).
    Holds for a (comparison, seed) where `winner` has the lowest value."""
    k = n = 0
    details = []
    for comparison, g in frame.groupby("comparison", sort=False):
        table = g.pivot_table(index="seed", columns="group", values="value", aggfunc="first").dropna()
        if winner not in table or table.shape[1] < 2:
            continue
        wins = table.idxmin(axis=1) == winner
        k, n = k + int(wins.sum()), n + len(wins)
        best_mean = table.mean().idxmin()
        details.append(f"{comparison}: {winner} lowest in {_count(int(wins.sum()), len(wins))} "
                       f"seeds; lowest mean: {best_mean}.")
    summary = (f"{winner} reaches the lowest loss within the epoch budget in {_count(k, n)} "
               f"(comparison, seed) pairs." if n else f"No runs to compare {winner} with.")
    return ClaimCheck(number, CLAIMS[4], verdict(k, n), summary, k, n, details)


def check_converges_within(epochs: pd.Series, limit: int = 60, number: int = 5) -> ClaimCheck:
    """epochs: epochs to converge per seed (NaN: never converged)."""
    epochs = pd.Series(epochs, dtype=float)
    n = len(epochs)
    within = int((epochs < limit).sum())
    converged = epochs.dropna()
    if n == 0:
        return ClaimCheck(number, CLAIMS[5], "no data", "No runs of the hand-tuned setting.")
    summary = (f"Converged before epoch {limit} in {_count(within, n)} seeds; converged at all in "
               f"{_count(len(converged), n)}")
    if len(converged):
        summary += (f" (epochs {converged.min():.0f}–{converged.max():.0f}, "
                    f"median {converged.median():.0f})")
    return ClaimCheck(number, CLAIMS[5], verdict(within, n), summary + ".", within, n)


# ---------------------------------------------------------------- from the reproduced tables

def _reading(result: TableResult) -> str:
    """The reading a claim is checked on: the best fit, or the only one."""
    return result.best_reading or result.sweep.readings[0].name


def _reading_note(result: TableResult) -> str:
    return f" (reading: {_reading(result)})" if result.sweep.ambiguous else ""


def _values(result: TableResult, reading: Optional[str] = None) -> pd.DataFrame:
    v = result.values
    return v[v.reading == (reading or _reading(result))]


def _optimizer_name(result: TableResult) -> str:
    name = dict(result.sweep.fixed).get("optimizer", "?")
    return {"adam": "Adam", "adagrad": "Adagrad", "rmsprop": "RMSprop", "sgd": "SGD"}.get(name, name)


def claim_hidden_size(tables: dict[str, TableResult]) -> ClaimCheck:
    names = [n for n in ("q2i_adam", "q2i_adagrad", "q2i_rmsprop") if n in tables]
    frames = []
    for name in names:
        t = tables[name]
        v = _values(t)
        sizes = t.sweep.layout.rows.values
        frames.append(pd.DataFrame({"group": _optimizer_name(t) + _reading_note(t),
                                    "size": [sizes[r] for r in v.row], "seed": v.seed,
                                    "value": v.value}))
    check = check_falls_with_size(pd.concat(frames) if frames else
                                  pd.DataFrame(columns=["group", "size", "seed", "value"]))
    for name in names:  # the other readings, for the record
        t = tables[name]
        for reading in (r.name for r in t.sweep.readings if r.name != _reading(t)):
            v = _values(t, reading)
            sizes = t.sweep.layout.rows.values
            other = check_falls_with_size(pd.DataFrame({
                "group": f"{_optimizer_name(t)} (reading: {reading})",
                "size": [sizes[r] for r in v.row], "seed": v.seed, "value": v.value}))
            check.details.append(other.summary)
    return check


def claim_bias(tables: dict[str, TableResult]) -> ClaimCheck:
    frames, everything = [], []
    for name in ("q1_epochs", "q1_lr"):
        if name not in tables:
            continue
        t = tables[name]
        bias_col = {v: i for i, v in enumerate(t.sweep.layout.columns.values)}
        for reading in (r.name for r in t.sweep.readings):
            v = _values(t, reading)
            wide = v.pivot_table(index=["row", "seed"], columns="col", values="value",
                                 aggfunc="first").reset_index()
            if bias_col.get(True) not in wide or bias_col.get(False) not in wide:
                continue
            frame = pd.DataFrame({
                "table": f"{t.sweep.name}{' (' + reading + ')' if t.sweep.ambiguous else ''}",
                "row": [f"{t.sweep.layout.rows.label} {t.sweep.layout.rows.labels[r]}"
                        for r in wide.row],
                "seed": wide.seed, "with_bias": wide[bias_col[True]],
                "without_bias": wide[bias_col[False]]})
            everything.append(frame)
            if reading == _reading(t):
                frames.append(frame)
    empty = pd.DataFrame(columns=["table", "row", "seed", "with_bias", "without_bias"])
    check = check_lower_with_bias(pd.concat(frames) if frames else empty)
    if everything:
        every = check_lower_with_bias(pd.concat(everything))
        check.details.append(f"Over every reading of the loss and init: lower with bias in "
                             f"{_count(every.holds, every.total)} pairs.")
    return check


def claim_spelling(tables: dict[str, TableResult], collection: Collection) -> ClaimCheck:
    runs = []
    for name, t in tables.items():
        if not name.startswith("q2"):
            continue
        at_end = t.values.drop_duplicates("run_dir").set_index("run_dir").spells_word
        for run_dir, spells in sorted(at_end.items()):
            h = collection.history(run_dir)
            if "spelled" in h:
                runs.append((run_dir, h.loss.to_numpy(float), h.spelled.to_numpy(bool), bool(spells)))
    check = check_spelling_vs_loss(runs)
    check.details.append("Counted over every Q2 run of every reading.")
    return check


def claim_fastest(tables: dict[str, TableResult]) -> ClaimCheck:
    frames = []
    q2i = [tables[n] for n in ("q2i_adam", "q2i_adagrad", "q2i_rmsprop") if n in tables]
    q2ii = [tables[n] for n in ("q2ii_adam", "q2ii_adagrad", "q2ii_rmsprop") if n in tables]
    for group, label in ((q2i, "Q2(i) hidden"), (q2ii, "Q2(ii) lr")):
        for t in group:
            v = _values(t)
            rows = t.sweep.layout.rows
            frames.append(pd.DataFrame({
                "comparison": [f"{label} {rows.labels[r]}" for r in v.row], "seed": v.seed,
                "group": _optimizer_name(t), "value": v.value}))
    frame = pd.concat(frames) if frames else pd.DataFrame(
        columns=["comparison", "seed", "group", "value"])
    # only settings every optimizer of its part ran (Q2(i): hidden 20 and 50)
    # astype: with no Q2 runs the concatenated empty frames hold floats, which .str refuses
    frame = frame.assign(part=frame.comparison.astype(str).str.split(" ").str[0])
    per_comparison = frame.groupby("comparison").group.nunique()
    per_part = frame.groupby("part").group.nunique()
    frame = frame[frame.comparison.map(per_comparison) == frame.part.map(per_part)]
    check = check_fastest(frame)
    check.details.append("Loss after the fixed epoch budget (1000 epochs in Q2(i), 100 in Q2(ii)); "
                         "each table on its best-fitting reading.")
    return check


def claim_tuned(tables: dict[str, TableResult]) -> ClaimCheck:
    if "q2ii_tuned" not in tables:
        return check_converges_within(pd.Series(dtype=float))
    t = tables["q2ii_tuned"]
    cols = list(t.sweep.layout.columns.values)
    col = cols.index("epochs_to_converge") if "epochs_to_converge" in cols else 0
    v = _values(t)
    check = check_converges_within(v[v.col == col].set_index("seed").value)
    check.details.append("Converged from epoch e: the loss stays below 5e-5 (printed 0.0000) and "
                         "the word is spelled from e to the last epoch.")
    return check


def check_conclusions(tables: dict[str, TableResult], collection: Collection) -> list[ClaimCheck]:
    return [claim_hidden_size(tables), claim_bias(tables), claim_spelling(tables, collection),
            claim_fastest(tables), claim_tuned(tables)]


def claims_markdown(checks: list[ClaimCheck]) -> str:
    out = []
    for c in checks:
        out.append(f"**{c.number}. {c.claim}** — *{c.verdict}*"
                   + (f" ({c.holds}/{c.total})" if c.total else "") + "\n")
        out.append(c.summary + "\n")
        for d in c.details:
            out.append(f"- {d}")
        out.append("")
    return "\n".join(out) + "\n"
