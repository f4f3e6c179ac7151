"""The report's five conclusions, each checked as a statistician would: every comparison paired by
seed where the design allows, its effect with a bootstrap 95 % interval, n and a test
(rnnexp.stats), and *too close to call* where the interval includes no effect.

A comparison comes out *as claimed* (the interval lies wholly on the claimed side), *against* (wholly
on the other side) or *too close to call*. A conclusion then:

    holds              every comparison as claimed
    holds in part      some as claimed, none against, the rest too close to call
    mixed              some as claimed, some against
    fails              none as claimed, some against
    too close to call  every comparison too close to call

Each check works on a small long-format frame, so it can be tried on made-up numbers;
`check_conclusions` builds those frames from the reproduced tables (each table on its best-fitting
reading, the other readings reported beside it where they disagree). docs/statistics.md says the
same in words.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional

import numpy as np
import pandas as pd

from rnnexp.collect import Collection
from rnnexp.stats import Effect, bootstrap, paired, proportion
from rnnexp.tables import TableResult

CLAIMS = {
    1: "Loss falls as the hidden size grows, for every optimizer (Q2(i)).",
    2: "Loss with the bias terms is generally lower than without (Q1), \"with exceptions\".",
    3: "The loss can fall while the generated string is still wrong; in the end it is right.",
    4: "RMSprop converges fastest of the optimizers tried.",
    5: "With hidden 5, RMSprop (lr 0.4, alpha 0.5) converges in under 60 epochs (Q2(ii)).",
}
AS_CLAIMED, AGAINST, TOO_CLOSE = "as claimed", "against", "too close to call"
TUNED_LIMIT = 60  # conclusion 5's "under 60 epochs"


@dataclass
class Comparison:
    label: str  # what is compared, e.g. "Adam: hidden 20 vs 5"
    text: str  # the effect in words (Effect.describe), or the figures of a count
    outcome: str  # AS_CLAIMED | AGAINST | TOO_CLOSE
    effect: Optional[Effect] = None


@dataclass
class ClaimCheck:
    number: int
    claim: str
    verdict: str  # holds | holds in part | mixed | fails | too close to call | no data
    summary: str  # one generated sentence
    comparisons: list[Comparison] = field(default_factory=list)
    details: list[str] = field(default_factory=list)

    def count(self, outcome: str) -> int:
        return sum(c.outcome == outcome for c in self.comparisons)


def _said(effect: Effect, *args, **kwargs) -> str:
    """Effect.describe without its "too close to call: " lead (the outcome says it)."""
    return effect.describe(*args, **kwargs).removeprefix("too close to call: ")


def outcome_of(effect: Effect, claimed: int) -> str:
    """claimed: the direction the claim expects (-1: a below b, +1: a above b)."""
    if effect.direction == 0:
        return TOO_CLOSE
    return AS_CLAIMED if effect.direction == claimed else AGAINST


def verdict(outcomes: Iterable[str]) -> str:
    outcomes = list(outcomes)
    if not outcomes:
        return "no data"
    ok, bad = outcomes.count(AS_CLAIMED), outcomes.count(AGAINST)
    if ok == len(outcomes):
        return "holds"
    if ok and bad:
        return "mixed"
    if ok:
        return "holds in part"
    return "fails" if bad else TOO_CLOSE


def _tally(comparisons: list[Comparison]) -> str:
    n = len(comparisons)
    parts = [f"{sum(c.outcome == o for c in comparisons)} {o}" for o in (AS_CLAIMED, AGAINST, TOO_CLOSE)]
    return f"{n} comparison{'s' if n != 1 else ''}: " + ", ".join(parts)


def _check(number: int, comparisons: list[Comparison], summary: str,
           details: Optional[list[str]] = None) -> ClaimCheck:
    return ClaimCheck(number, CLAIMS[number], verdict(c.outcome for c in comparisons),
                      summary, comparisons, details or [])


def _paired_by_seed(frame: pd.DataFrame, a, b, column: str) -> tuple[np.ndarray, np.ndarray]:
    """The values of `a` and `b` (values of `column`) on the seeds both have."""
    table = frame.pivot_table(index="seed", columns=column, values="value", aggfunc="first")
    table = table[[a, b]].dropna()
    return table[a].to_numpy(float), table[b].to_numpy(float)


# ---------------------------------------------------------------- the checks on plain data

def check_falls_with_size(frame: pd.DataFrame, number: int = 1) -> ClaimCheck:
    """frame: group (optimizer), size, seed, value (loss). One comparison per group and step up in
    size: the loss at the larger size against the smaller one, paired by seed (ratio)."""
    comparisons = []
    for group, g in frame.groupby("group", sort=False):
        sizes = sorted(g["size"].unique())
        for small, large in zip(sizes, sizes[1:]):
            a, b = _paired_by_seed(g, large, small, "size")
            if len(a) == 0:
                continue
            e = paired(a, b)
            comparisons.append(Comparison(
                f"{group}: hidden {large:g} against {small:g}",
                _said(e, f"hidden {large:g}", f"hidden {small:g}"), outcome_of(e, -1), e))
    summary = (f"The loss at each larger hidden size against the next smaller one, per optimizer, "
               f"paired by seed; {_tally(comparisons)}." if comparisons else "No Q2(i) runs to check.")
    return _check(number, comparisons, summary)


def check_lower_with_bias(frame: pd.DataFrame, number: int = 2) -> ClaimCheck:
    """frame: setting (label), seed, with_bias, without_bias; each setting once. One comparison
    per setting: the loss with bias against without, paired by seed (ratio)."""
    frame = frame.dropna(subset=["with_bias", "without_bias"])
    comparisons = []
    for setting, g in frame.groupby("setting", sort=False):
        e = paired(g.with_bias.to_numpy(float), g.without_bias.to_numpy(float))
        comparisons.append(Comparison(setting, _said(e, "with bias", "without"),
                                      outcome_of(e, -1), e))
    summary = (f"The loss with the bias terms against without, per setting (each setting counted "
               f"once), paired by seed; {_tally(comparisons)}." if comparisons
               else "No Q1 runs to check.")
    return _check(number, comparisons, summary)


def _share(k: int, n: int) -> str:
    share, low, high = proportion(k, n)
    return f"{k}/{n} ({100 * share:.0f} %, 95 % CI {100 * low:.0f}–{100 * high:.0f} %)"


def check_spelling_vs_loss(runs: Iterable[tuple], number: int = 3) -> ClaimCheck:
    """runs: (name, loss fell at an epoch where the string was wrong, epochs at which the string
    turned wrong although the loss fell, spells the word after training), as
    rnnexp.record.spelling_facts reads them from a whole history. Two halves: (a) the loss falls
    while the string is wrong: seen in at least one run; (b) in the end it is right: the share of
    runs that spell the word after training, whose Wilson 95 % interval must lie above one half
    (most runs end right)."""
    n = lost_runs = wrong_while_falling = end_right = 0
    for _name, fell_while_wrong, lost_while_falling, spells in runs:
        n += 1
        lost_runs += lost_while_falling > 0
        wrong_while_falling += bool(fell_while_wrong)
        end_right += bool(spells)
    if n == 0:
        return ClaimCheck(number, CLAIMS[3], "no data", "No Q2 runs to check.")
    seen = wrong_while_falling > 0 or lost_runs > 0
    _, low, high = proportion(end_right, n)
    comparisons = [
        Comparison("the loss falls while the string is wrong",
                   f"in {_share(wrong_while_falling, n)} runs; the string was right and turned "
                   f"wrong at an epoch where the loss fell in {_share(lost_runs, n)}",
                   AS_CLAIMED if seen else AGAINST),
        Comparison("in the end it is right", f"{_share(end_right, n)} runs spell the word after "
                   "the last epoch",
                   AS_CLAIMED if low > 0.5 else AGAINST if high < 0.5 else TOO_CLOSE),
    ]
    summary = (f"Over {n} runs, each counted once: the first half needs one run, the second most "
               "runs (a share whose interval lies above one half).")
    return _check(number, comparisons, summary)


def check_fastest(frame: pd.DataFrame, winner: str = "RMSprop", number: int = 4) -> ClaimCheck:
    """frame: comparison (a cell, e.g. "Q2(ii) lr 0.4"), seed, group (optimizer), value (epochs to
    converge; NaN: did not converge), budget (the cell's epochs). A cell where no run of any
    optimizer converged is left out (nobody learned: no speed to compare). In the others, `winner`
    against each other optimizer, paired by seed: the difference in epochs to converge, a run
    that did not converge counted as budget + 1 (so the difference is a bound where one side
    did not converge)."""
    comparisons, left_out = [], []
    for cell, g in frame.groupby("comparison", sort=False):
        if g.value.notna().sum() == 0:
            left_out.append(cell)
            continue
        budget = int(g.budget.max())
        g = g.assign(value=g.value.fillna(budget + 1))
        others = [o for o in g.group.unique() if o != winner]
        if winner not in set(g.group) or not others:
            continue
        for other in others:
            a, b = _paired_by_seed(g, winner, other, "group")
            if len(a) == 0:
                continue
            e = paired(a, b, scale="difference")
            text = _said(e, winner, other, "epochs")
            missed = [f"{name} in {int((x > budget).sum())}/{len(x)}"
                      for name, x in ((winner, a), (other, b)) if (x > budget).any()]
            if missed:
                text += (f"; did not converge within {budget} epochs: {', '.join(missed)} "
                         f"seeds (counted as {budget + 1}, so the difference is a bound)")
            comparisons.append(Comparison(f"{cell}: {winner} against {other}", text,
                                          outcome_of(e, -1), e))
    summary = (f"Epochs to converge (loss below 5e-5 and the word spelled, through the last "
               f"epoch), {winner} against each other optimizer in each cell, paired by seed; "
               f"{_tally(comparisons)}." if comparisons else f"No runs to compare {winner} with.")
    details = []
    if left_out:
        details.append("Left out, since no optimizer converged there in any seed: "
                       + ", ".join(left_out) + ".")
    return _check(number, comparisons, summary, details)


def tuned_comparison(label: str, epochs: pd.Series, budget: int,
                     limit: int = TUNED_LIMIT) -> Comparison:
    """epochs to converge per seed (NaN: never converged, counted as budget + 1): the median with
    a bootstrap 95 % interval, against `limit`."""
    x = pd.Series(epochs, dtype=float).fillna(budget + 1).to_numpy()
    n = len(x)
    med, low, high = bootstrap(lambda idx: np.median(x[idx], axis=1), n)
    converged = int((x <= budget).sum())
    within = int((x < limit).sum())
    shown = lambda v: f"{v:g}" if v <= budget else f">{budget}"  # noqa: E731
    text = (f"median {shown(med)} epochs (95 % CI {shown(low)}–{shown(high)}; n = {n}); converged "
            f"before epoch {limit} in {_share(within, n)}, at all in {converged}/{n}")
    outcome = AS_CLAIMED if high < limit else AGAINST if low >= limit else TOO_CLOSE
    return Comparison(label, text, outcome)


def check_converges_within(epochs: pd.Series, budget: int = 100, limit: int = TUNED_LIMIT,
                           fresh: Optional[pd.Series] = None, number: int = 5) -> ClaimCheck:
    """epochs: epochs to converge per table seed (NaN: never converged); fresh: the same on seeds
    no table or search used (the study's validation), judged beside them."""
    comparisons = []
    if len(epochs):
        comparisons.append(tuned_comparison("the table's seeds", epochs, budget, limit))
    if fresh is not None and len(fresh):
        comparisons.append(tuned_comparison("the study's fresh seeds", fresh, budget, limit))
    summary = (f"The median epochs to converge against {limit}, with a bootstrap interval over "
               "seeds; a run that does not converge counts as the budget + 1."
               if comparisons else "No runs of the hand-tuned setting.")
    return _check(number, comparisons, summary)


# ---------------------------------------------------------------- from the reproduced tables

def _reading(result: TableResult) -> str:
    """The reading a claim is checked on: the best fit, or the only one."""
    return result.best_reading or result.sweep.readings[0].name


def _values(result: TableResult, reading: Optional[str] = None) -> pd.DataFrame:
    v = result.values
    return v[v.reading == (reading or _reading(result))]


def _optimizer_name(result: TableResult) -> str:
    name = dict(result.sweep.fixed).get("optimizer", "?")
    return {"adam": "Adam", "adagrad": "Adagrad", "rmsprop": "RMSprop", "sgd": "SGD"}.get(name, name)


def _other_readings(result: TableResult) -> list[str]:
    """Readings besides the one checked whose runs differ from it (a reading that only prints the
    same runs' loss another way gives the same comparisons)."""
    sweep = result.sweep
    main = sweep.reading(_reading(result))
    return [r.name for r in sweep.readings
            if r.name != main.name and r.printed == "as trained"
            and r.overrides != main.overrides]


def _disagreement(reading_label: str, check: ClaimCheck, main: ClaimCheck) -> str:
    agree = "agrees" if check.verdict == main.verdict else "disagrees"
    return (f"On {reading_label}: *{check.verdict}* ({_tally(check.comparisons)}); "
            f"{agree} with the best-fitting reading.")


def _size_frame(t: TableResult, reading: str) -> pd.DataFrame:
    v = _values(t, reading)
    sizes = t.sweep.layout.rows.values
    return pd.DataFrame({"group": _optimizer_name(t), "size": [sizes[r] for r in v.row],
                         "seed": v.seed, "value": v.value})


def claim_hidden_size(tables: dict[str, TableResult]) -> ClaimCheck:
    names = [n for n in ("q2i_adam", "q2i_adagrad", "q2i_rmsprop") if n in tables]
    frames = [_size_frame(tables[n], _reading(tables[n])) for n in names]
    empty = pd.DataFrame(columns=["group", "size", "seed", "value"])
    check = check_falls_with_size(pd.concat(frames) if frames else empty)
    for name in names:
        t = tables[name]
        if t.sweep.ambiguous:
            check.details.append(f"{_optimizer_name(t)} on its best-fitting reading, "
                                 f"{_reading(t)}.")
        for reading in _other_readings(t):
            other = check_falls_with_size(_size_frame(t, reading))
            check.details.append(_disagreement(f"{_optimizer_name(t)}'s reading “{reading}”",
                                               other, _subset(check, _optimizer_name(t) + ":")))
    return check


def _subset(check: ClaimCheck, prefix: str) -> ClaimCheck:
    """The comparisons of a check whose label starts with `prefix`, as a check of their own."""
    comparisons = [c for c in check.comparisons if c.label.startswith(prefix)]
    return ClaimCheck(check.number, check.claim, verdict(c.outcome for c in comparisons), "",
                      comparisons)


def _bias_frames(tables: dict[str, TableResult], pick) -> pd.DataFrame:
    """One row per (setting, seed) of the Q1 tables, each setting once: Q1-epochs reads the loss
    at several epochs of lr 0.001 runs, Q1-lr at 5000 epochs of three learning rates, and lr
    0.001 at 5000 epochs is in both (the same runs' numbers: counted once)."""
    rows = {}
    for name in ("q1_epochs", "q1_lr"):
        if name not in tables:
            continue
        t = tables[name]
        layout, fixed = t.sweep.layout, dict(t.sweep.fixed)
        bias_col = {v: i for i, v in enumerate(layout.columns.values)}
        v = _values(t, pick(t))
        wide = v.pivot_table(index=["row", "seed"], columns="col", values="value",
                             aggfunc="first").reset_index()
        if bias_col.get(True) not in wide or bias_col.get(False) not in wide:
            continue
        for rec in wide.to_dict("records"):
            point = {"optimizer.lr": fixed.get("optimizer.lr"), "epoch": fixed.get("train.epochs")}
            key = layout.rows.key if layout.rows.key != "epoch" else "epoch"
            point[key] = layout.rows.values[int(rec["row"])]
            label = f"lr {point['optimizer.lr']:g}, loss after {int(point['epoch'])} epochs"
            rows.setdefault((label, int(rec["seed"])), {
                "setting": label, "seed": int(rec["seed"]),
                "with_bias": rec[bias_col[True]], "without_bias": rec[bias_col[False]]})
    return pd.DataFrame(list(rows.values()),
                        columns=["setting", "seed", "with_bias", "without_bias"])


def claim_bias(tables: dict[str, TableResult]) -> ClaimCheck:
    check = check_lower_with_bias(_bias_frames(tables, _reading))
    q1 = [tables[n] for n in ("q1_epochs", "q1_lr") if n in tables]
    if q1:
        check.details.append("On the best-fitting reading, " + _reading(q1[0]) + "; lr 0.001 "
                             "after 5000 epochs is in both Q1 tables and counted once.")
        for reading in _other_readings(q1[0]):
            if all(reading in [r.name for r in t.sweep.readings] for t in q1):
                other = check_lower_with_bias(_bias_frames(tables, lambda t, r=reading: r))
                check.details.append(_disagreement(f"the reading “{reading}”", other, check))
    return check


def claim_spelling(tables: dict[str, TableResult], collection: Collection) -> ClaimCheck:
    runs, seen = [], set()
    for name, t in tables.items():
        if not name.startswith("q2"):
            continue
        at_end = t.values.drop_duplicates("run_dir").set_index("run_dir").spells_word
        for run_dir, spells in sorted(at_end.items()):
            if run_dir in seen:
                continue
            seen.add(run_dir)
            facts = collection.raw.get(run_dir, {}).get("facts") or {}
            if facts:
                runs.append((run_dir, facts["fell_while_wrong"], facts["lost_while_falling"],
                             bool(spells)))
    check = check_spelling_vs_loss(runs)
    check.details.append("Counted over every Q2 run of every reading.")
    return check


def _speed_frame(tables: dict[str, TableResult], collection: Collection, picks: dict) -> pd.DataFrame:
    """comparison, seed, group, value (epochs to converge), budget: Q2(i) at the hidden sizes
    every optimizer ran, Q2(ii) at each learning rate."""
    epochs = collection.runs.set_index("run_dir")["epochs_to_converge"] \
        if "epochs_to_converge" in collection.runs else pd.Series(dtype=float)
    frames = []
    for prefix, label in (("q2i_", "Q2(i) hidden"), ("q2ii_", "Q2(ii) lr")):
        for name in (f"{prefix}adam", f"{prefix}adagrad", f"{prefix}rmsprop"):
            if name not in tables:
                continue
            t = tables[name]
            v = _values(t, picks.get(name)).drop_duplicates(["row", "seed"])
            rows = t.sweep.layout.rows
            frames.append(pd.DataFrame({
                "comparison": [f"{label} {rows.labels[r]}" for r in v.row], "seed": v.seed,
                "group": _optimizer_name(t),
                "value": [epochs.get(d, math.nan) for d in v.run_dir],
                "budget": t.sweep.epochs}))
    frame = pd.concat(frames) if frames else pd.DataFrame(
        columns=["comparison", "seed", "group", "value", "budget"])
    frame = frame.assign(value=pd.to_numeric(frame.value, errors="coerce"),
                         part=frame.comparison.astype(str).str.split(" ").str[0])
    # only the cells every optimizer of its part ran (Q2(i): hidden 20 and 50)
    per_comparison = frame.groupby("comparison").group.nunique()
    per_part = frame.groupby("part").group.nunique()
    return frame[frame.comparison.map(per_comparison) == frame.part.map(per_part)]


def claim_fastest(tables: dict[str, TableResult], collection: Collection) -> ClaimCheck:
    check = check_fastest(_speed_frame(tables, collection, {}))
    check.details.append("Each table on its best-fitting reading; where readings differ, the "
                         "other readings of one optimizer at a time:")
    for name, t in tables.items():
        if not name.startswith("q2") or name.endswith("tuned"):
            continue
        for reading in _other_readings(t):
            other = check_fastest(_speed_frame(tables, collection, {name: reading}))
            check.details.append(_disagreement(f"{t.sweep.title.split(':')[0]}'s reading "
                                               f"“{reading}”", other, check))
    return check


def claim_tuned(tables: dict[str, TableResult], study_dir: Optional[Path] = None) -> ClaimCheck:
    fresh = None
    budget = 100
    table_epochs = pd.Series(dtype=float)
    if "q2ii_tuned" in tables:
        t = tables["q2ii_tuned"]
        budget = t.sweep.epochs
        cols = list(t.sweep.layout.columns.values)
        col = cols.index("epochs_to_converge") if "epochs_to_converge" in cols else 0
        v = _values(t)
        table_epochs = v[v.col == col].set_index("seed").value
    runs_csv = Path(study_dir) / "validation_runs.csv" if study_dir is not None else None
    if runs_csv is not None and runs_csv.exists():
        runs = pd.read_csv(runs_csv)
        fresh = runs[runs.setting == "report"].epochs_to_converge
    check = check_converges_within(table_epochs, budget, fresh=fresh)
    check.details.append("Converged from epoch e: the loss stays below 5e-5 (printed 0.0000) and "
                         "the word is spelled from e to the last epoch. The fresh seeds are the "
                         "study's validation of the report's setting (seeds no table or search "
                         "used).")
    return check


def check_conclusions(tables: dict[str, TableResult], collection: Collection,
                      study_dir: Optional[Path] = None) -> list[ClaimCheck]:
    return [claim_hidden_size(tables), claim_bias(tables), claim_spelling(tables, collection),
            claim_fastest(tables, collection), claim_tuned(tables, study_dir)]


def claims_markdown(checks: list[ClaimCheck]) -> str:
    out = []
    for c in checks:
        out.append(f"**{c.number}. {c.claim}** — *{c.verdict}*\n")
        out.append(c.summary + "\n")
        for comp in c.comparisons:
            out.append(f"- {comp.label} — *{comp.outcome}*: {comp.text}")
        if c.comparisons and c.details:
            out.append("")
        for d in c.details:
            if d.endswith(":"):  # a lead-in of the bullets after it: a paragraph of its own
                out += ["", d, ""]
            else:
                out.append(f"- {d}")
        out.append("")
    return "\n".join(out) + "\n"
