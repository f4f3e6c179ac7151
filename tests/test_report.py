"""Tables, fit verdicts, claim checks and REPORT.md from synthetic runs (nothing is trained)."""
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fake_runs import fake_run
from rnnexp.claims import (check_converges_within, check_falls_with_size, check_fastest,
                           check_lower_with_bias, check_spelling_vs_loss, verdict)
from rnnexp.collect import collect
from rnnexp import report
from rnnexp.reproduce import SECTIONS
from rnnexp.sweeps import load_sweep
from rnnexp.tables import build_table, log_distance, table_csv, table_markdown

SWEEP = """
title: "Tiny: loss against learning rate and hidden size"
section: "Tiny section"
fixed: {word: edgement, model: torch_rnn, optimizer: rmsprop, train.epochs: 20}
grid:
  optimizer.lr: [0.01, 0.4]
  model.hidden_size: [5, 10]
readings:
  - {name: alpha 0.99, set: {optimizer.alpha: 0.99}}
  - {name: alpha 0.5, set: {optimizer.alpha: 0.5}}
ambiguity: The text and the code disagree on alpha.
seeds: 2
table:
  rows: {key: optimizer.lr, label: learning rate}
  columns: {key: model.hidden_size, label: hidden, labels: [hidden 5, hidden 10]}
  generated: true
published:
  - ["0.100", "0.0500"]
  - ["0.0010", "0.00000"]
"""
PUBLISHED = {(0.01, 5): 0.1, (0.01, 10): 0.05, (0.4, 5): 0.001, (0.4, 10): 1e-7}


@pytest.fixture
def tiny(tmp_path):
    sweeps = tmp_path / "sweeps"
    sweeps.mkdir()
    (sweeps / "tiny.yaml").write_text(SWEEP)
    results = tmp_path / "results"
    runs = results / "runs" / "tiny"
    for alpha, scale in ((0.5, 1.0), (0.99, 30.0)):  # alpha 0.5 reproduces the published values
        for (lr, h), value in PUBLISHED.items():
            for seed in (0, 1):
                fake_run(runs / f"a={alpha},lr={lr},h={h},s={seed}",
                         {"optimizer.alpha": alpha, "optimizer.lr": lr, "model.hidden_size": h},
                         seed=seed, final_loss=value * scale * (1.1 if seed else 0.9),
                         generated="edgement" if lr == 0.4 else "eeeeeeee")
    # a run with another setting (eps) in the same folder: must not count
    fake_run(runs / "other_eps", {"optimizer.alpha": 0.5, "optimizer.lr": 0.01,
                                  "model.hidden_size": 5, "optimizer.eps": 1e-3}, seed=2)
    return sweeps, results


def test_table_has_the_report_layout_and_picks_the_fitting_reading(tiny):
    sweeps, results = tiny
    sweep = load_sweep(sweeps / "tiny.yaml")
    result = build_table(sweep, collect(results / "runs", base=results, warn=False))
    assert result.best_reading == "alpha 0.5"
    cells = result.cells[result.cells.reading == "alpha 0.5"].set_index(["row", "col"])
    assert cells.loc[(0, 0), "n"] == 2  # seeds 0 and 1; the other-eps run is not counted
    assert cells.loc[(0, 0), "mean"] == pytest.approx(0.1)
    assert cells.loc[(1, 1), "published_text"] == "0.00000"
    md = table_markdown(result, "alpha 0.5").splitlines()
    assert md[0] == ("| learning rate | hidden 5: reproduced | published | hidden 10: reproduced | "
                     "published | generates (most common) | seeds spelling 'edgement' |")
    assert md[2].startswith("| 0.01 | 0.1 ± 0.014 (n=2) | 0.100 | 0.05 ± 0.0071 (n=2) | 0.0500 |")
    assert md[3].endswith("| `edgement` | 2/2 |")
    csv = table_csv(result)
    assert list(csv.columns[:6]) == ["reading", "learning rate", "hidden 5 mean", "hidden 5 sd",
                                     "hidden 5 n", "hidden 5 published"]
    assert len(csv) == 4  # two readings x two rows


def test_a_reading_printed_per_step_reads_the_sums_runs_divided_by_the_steps(tiny, tmp_path):
    """A "per step" reading runs nothing of its own: it reads the runs of the reading that sets
    the same values, each loss divided by the word's time steps ("edgement": 7)."""
    sweeps, results = tiny
    text = SWEEP.replace("  - {name: alpha 0.5, set: {optimizer.alpha: 0.5}}\n",
                         "  - {name: alpha 0.5, set: {optimizer.alpha: 0.5}}\n"
                         "  - {name: alpha 0.5 per step, set: {optimizer.alpha: 0.5}, "
                         "printed: per step}\n")
    (sweeps / "tiny.yaml").write_text(text)
    sweep = load_sweep(sweeps / "tiny.yaml")
    assert sweep.n_runs() == 16 and len(sweep.commands(tmp_path)) == 1
    values = build_table(sweep, collect(results / "runs", base=results)).values
    plain = values[values.reading == "alpha 0.5"].set_index(["row", "col", "seed"]).value
    per_step = values[values.reading == "alpha 0.5 per step"].set_index(["row", "col", "seed"]).value
    assert np.allclose(per_step, plain / 7)
    bad = text.replace("printed: per step", "printed: per word")
    (sweeps / "tiny.yaml").write_text(bad)
    with pytest.raises(ValueError, match=r"readings\[2\]\.printed: 'per word' is not one of"):
        load_sweep(sweeps / "tiny.yaml")


def test_log_distance_treats_a_printed_zero_as_below_its_last_digit():
    from rnnexp.sweeps import Published
    zero = Published.parse("0.00000")
    assert log_distance(3e-6, zero) == 0.0
    assert log_distance(5e-4, zero) == pytest.approx(2.0)
    assert log_distance(0.02, Published.parse("0.0020")) == pytest.approx(1.0)


def test_build_report_writes_every_output(tiny):
    sweeps, results = tiny
    ctx = report.build_report(results, SECTIONS, sweeps_dir=sweeps)
    for name in ("runs.csv", "REPORT.md", "tables/tiny.csv", "tables/tiny.md", "plots/tiny.png"):
        assert (results / name).is_file(), name
    text = (results / "REPORT.md").read_text()
    assert text.index("## How this report was made") < text.index("## Tiny section") \
        < text.index("## Where the report contradicts itself") \
        < text.index("## The report's conclusions")
    assert "rnnexp-train -m" in text and "Seeds found: 0, 1 " in text
    assert "fit **alpha 0.5** best" in text
    assert len(pd.read_csv(results / "runs.csv")) == len(ctx.collection.runs) == 17
    assert (results / "plots" / "tiny.png").read_bytes()[:4] == b"\x89PNG"


def test_a_registered_section_lands_in_report_order(tiny):
    sweeps, results = tiny
    later = report.Section("study", 150, lambda ctx: "## A later study\n")
    sections = [s for s in SECTIONS if s.name != "study"] + [later]
    report.build_report(results, sections, sweeps_dir=sweeps)
    text = (results / "REPORT.md").read_text()
    assert text.index("## Tiny section") < text.index("## A later study") \
        < text.index("## Where the report contradicts itself")


def _outputs(results):
    """Every file the report writes, REPORT.md without its timestamp line: name -> bytes, mtime."""
    out = {}
    for path in sorted(results.rglob("*")):
        rel = path.relative_to(results).as_posix()
        if path.is_dir() or rel.startswith(("runs/", ".cache/")) or rel == ".lock":
            continue
        data = path.read_bytes()
        if rel == "REPORT.md":
            data = b"\n".join(l for l in data.split(b"\n") if b"Report built" not in l)
        out[rel] = (data, path.stat().st_mtime_ns)
    return out


def test_a_report_on_unchanged_runs_reads_composes_and_draws_nothing_again(tiny, monkeypatch):
    import rnnexp.collect
    import rnnexp.plots
    import rnnexp.record

    sweeps, results = tiny
    report.build_report(results, SECTIONS, sweeps_dir=sweeps)
    before = _outputs(results)

    def refuse(*args, **kwargs):
        raise AssertionError("done again although nothing changed")

    drawn = []
    real_draw = rnnexp.plots.draw

    def counted_draw(spec, path):
        drawn.append(path.name)
        return real_draw(spec, path)
    monkeypatch.setattr(report, "report_sweeps", refuse)  # no sweep file read, no Hydra compose
    monkeypatch.setattr(rnnexp.collect, "read_run", refuse)
    monkeypatch.setattr(rnnexp.collect, "read_history", refuse)
    monkeypatch.setattr(rnnexp.plots, "draw", counted_draw)
    monkeypatch.setattr(report, "check_conclusions", refuse)  # the conclusions from the cache
    monkeypatch.setattr(rnnexp.record, "entry_of", refuse)  # the record's entries stand
    ctx = report.build_report(results, SECTIONS, sweeps_dir=sweeps)
    after = _outputs(results)
    assert drawn == [] and len(ctx.collection.runs) == 17
    assert {k: v[0] for k, v in after.items()} == {k: v[0] for k, v in before.items()}
    unchanged = {k for k in before if k != "REPORT.md"}
    assert {k for k in unchanged if after[k][1] != before[k][1]} == set()  # not even rewritten

    # a run trained again with other numbers: read again, its table and plot redone, and
    # everything as a report without any cache writes it
    monkeypatch.undo()
    monkeypatch.setattr(rnnexp.plots, "draw", counted_draw)
    checked, entries = [], []
    real_entry_of = rnnexp.record.entry_of
    monkeypatch.setattr(rnnexp.record, "entry_of",
                        lambda c, run_dir, *a: entries.append(run_dir) or real_entry_of(c, run_dir, *a))
    real_check = report.check_conclusions
    monkeypatch.setattr(report, "check_conclusions",
                        lambda *a, **k: checked.append(1) or real_check(*a, **k))
    fake_run(results / "runs" / "tiny" / "a=0.5,lr=0.4,h=10,s=1",
             {"optimizer.alpha": 0.5, "optimizer.lr": 0.4, "model.hidden_size": 10}, seed=1,
             final_loss=0.3)
    (results / "plots" / "tiny.png").write_bytes(b"a stray edit")  # the PNG is checked too
    report.build_report(results, SECTIONS, sweeps_dir=sweeps)
    assert drawn == ["tiny.png"] and checked == [1]  # the conclusions checked again
    assert [Path(d).name for d in entries] == ["a=0.5,lr=0.4,h=10,s=1"]  # that run's entry alone
    cached = _outputs(results)
    assert cached["tables/tiny.csv"][0] != before["tables/tiny.csv"][0]
    shutil.rmtree(results / ".cache")
    report.build_report(results, SECTIONS, sweeps_dir=sweeps)
    assert {k: v[0] for k, v in _outputs(results).items()} == {k: v[0] for k, v in cached.items()}

    # a PNG removed is drawn again
    drawn.clear()
    (results / "plots" / "tiny.png").unlink()
    report.build_report(results, SECTIONS, sweeps_dir=sweeps)
    assert drawn == ["tiny.png"]
    assert (results / "plots" / "tiny.png").read_bytes() == cached["plots/tiny.png"][0]


def test_the_report_rebuilds_identically_from_its_record_without_run_dirs(tiny):
    """record.jsonl.gz holds every run's config, metrics and history: with every run dir and the
    cache deleted, the report writes the same runs.csv, tables, plots and REPORT.md (the line
    saying when it was built aside). A run dir trained again later replaces its record entry."""
    sweeps, results = tiny
    report.build_report(results, SECTIONS, sweeps_dir=sweeps)
    before = {k: v[0] for k, v in _outputs(results).items()}
    assert "record.jsonl.gz" in before and "plots/tiny.png" in before
    shutil.rmtree(results / "runs")
    shutil.rmtree(results / ".cache")
    ctx = report.build_report(results, SECTIONS, sweeps_dir=sweeps)
    assert len(ctx.collection.runs) == 17
    assert {k: v[0] for k, v in _outputs(results).items()} == before

    fake_run(results / "runs" / "tiny" / "a=0.5,lr=0.4,h=10,s=1",
             {"optimizer.alpha": 0.5, "optimizer.lr": 0.4, "model.hidden_size": 10}, seed=1,
             final_loss=0.3)
    ctx = report.build_report(results, SECTIONS, sweeps_dir=sweeps)
    assert len(ctx.collection.runs) == 17
    runs = pd.read_csv(results / "runs.csv").set_index("run_dir")
    assert runs.loc["runs/tiny/a=0.5,lr=0.4,h=10,s=1", "final_loss"] == pytest.approx(0.3)


def test_a_long_runs_record_keeps_its_curve_and_every_epoch_a_table_reads():
    from rnnexp.record import kept_epochs

    epochs = np.arange(1, 10001)
    kept = epochs[kept_epochs(epochs, wanted=[1234])]
    assert {1, 50, 1000, 1050, 1234, 2000, 5000, 10000} <= set(kept)
    assert 101 not in kept and len(kept) == 202
    assert kept_epochs(np.arange(1, 201)).all()  # a short run keeps every epoch


def test_a_damaged_record_is_one_line_naming_it(tiny):
    from rnnexp.record import RecordError

    sweeps, results = tiny
    report.build_report(results, SECTIONS, sweeps_dir=sweeps)
    (results / "record.jsonl.gz").write_bytes(b"not gzip")
    with pytest.raises(RecordError, match="record.jsonl.gz is not a readable run record"):
        report.build_report(results, SECTIONS, sweeps_dir=sweeps)


def test_a_changed_sweep_file_is_read_again(tiny):
    sweeps, results = tiny
    report.build_report(results, SECTIONS, sweeps_dir=sweeps)
    (sweeps / "tiny.yaml").write_text(SWEEP.replace('title: "Tiny: ', 'title: "Tiny again: '))
    ctx = report.build_report(results, SECTIONS, sweeps_dir=sweeps)
    assert ctx.sweeps[0].title.startswith("Tiny again: ")
    assert "# Tiny again: " in (results / "tables" / "tiny.md").read_text()


# ---------------------------------------------------------------- claim checks on made-up data

def _sizes(values_by_seed, sizes=(5, 20, 50)):
    return pd.DataFrame([{"group": "Adam", "size": s, "seed": seed, "value": v}
                         for seed, values in enumerate(values_by_seed)
                         for s, v in zip(sizes, values)])


RNG = np.random.default_rng(7)
NOISE = RNG.lognormal(0, 0.05, (12, 3))  # 12 seeds, a few per cent apart


def test_hidden_size_claim_is_judged_per_step_with_an_interval():
    falls = check_falls_with_size(_sizes(NOISE * [1.0, 0.1, 0.01]))
    assert falls.verdict == "holds" and len(falls.comparisons) == 2
    first = falls.comparisons[0]
    assert first.label == "Adam: hidden 20 against 5" and first.outcome == "as claimed"
    assert first.effect.n == 12 and first.effect.high < 1
    assert "hidden 20 89.9 % lower than hidden 5 (95 % CI" in first.text and "n = 12" in first.text
    rises = check_falls_with_size(_sizes(NOISE * [1.0, 0.1, 0.3]))  # 20 -> 50 rises
    assert rises.verdict == "mixed"
    assert [c.outcome for c in rises.comparisons] == ["as claimed", "against"]
    flat = check_falls_with_size(_sizes(NOISE * [1.0, 0.1, 0.1]))  # 20 -> 50: noise alone
    assert flat.verdict == "holds in part" and flat.comparisons[1].outcome == "too close to call"


def test_bias_claim_is_one_paired_comparison_per_setting():
    seeds = range(12)
    frame = pd.DataFrame(
        [{"setting": "lr 0.001, 1000 epochs", "seed": s, "with_bias": 0.95 * w,
          "without_bias": w} for s, w in zip(seeds, NOISE[:, 0])]
        + [{"setting": "lr 0.005, 5000 epochs", "seed": s, "with_bias": w,
            "without_bias": v} for s, w, v in zip(seeds, NOISE[:, 1], NOISE[:, 2])])
    check = check_lower_with_bias(frame)
    assert [c.outcome for c in check.comparisons] == ["as claimed", "too close to call"]
    assert check.verdict == "holds in part"
    assert "with bias 5.0 % lower than without" in check.comparisons[0].text


def test_spelling_claim_sees_the_word_lost_while_the_loss_falls():
    from rnnexp.record import spelling_facts

    loss = np.array([3.0, 2.0, 1.0, 0.5, 0.2])
    lost = spelling_facts(loss, np.array([0, 1, 0, 1, 1], bool))  # right at 2, wrong at 3
    steady = spelling_facts(loss, np.array([0, 0, 1, 1, 1], bool))
    assert lost == {"fell_while_wrong": True, "lost_while_falling": 1}
    assert steady == {"fell_while_wrong": True, "lost_while_falling": 0}
    runs = [("a", *lost.values(), True), ("b", *steady.values(), True)]
    check = check_spelling_vs_loss(runs * 6)
    assert check.verdict == "holds"
    assert "turned wrong at an epoch where the loss fell in 6/12" in check.comparisons[0].text
    assert "12/12 (100 %, 95 % CI 76–100 %)" in check.comparisons[1].text
    few = check_spelling_vs_loss(runs)  # 2/2 right: too few to say
    assert few.comparisons[1].outcome == "too close to call"
    never = spelling_facts(loss, np.ones(5, bool))
    check = check_spelling_vs_loss([("c", *never.values(), False)] * 12)
    assert check.verdict == "fails"


def test_fastest_claim_compares_epochs_to_converge_and_leaves_out_cells_nobody_learned():
    rows = []
    for seed in range(10):
        rows += [{"comparison": "lr 0.4", "seed": seed, "group": "RMSprop", "value": 20 + seed % 3,
                  "budget": 100},
                 {"comparison": "lr 0.4", "seed": seed, "group": "Adam",
                  "value": 60 + seed if seed < 8 else np.nan, "budget": 100},
                 {"comparison": "lr 0.001", "seed": seed, "group": "RMSprop", "value": np.nan,
                  "budget": 100},
                 {"comparison": "lr 0.001", "seed": seed, "group": "Adam", "value": np.nan,
                  "budget": 100}]
    check = check_fastest(pd.DataFrame(rows))
    assert check.verdict == "holds" and len(check.comparisons) == 1
    assert check.comparisons[0].label == "lr 0.4: RMSprop against Adam"
    assert "epochs fewer than Adam" in check.comparisons[0].text
    assert "lr 0.001" in check.details[0] and "no optimizer converged" in check.details[0]


def test_tuned_claim_judges_the_median_on_table_and_fresh_seeds():
    table = pd.Series([48, 59, 75, 81, np.nan, 90, 70, 66, 85, 77])
    fresh = pd.Series([30, 35, 40, 38, 42, 33, 36, 44, 39, 41] * 2)
    check = check_converges_within(table, budget=100, limit=60, fresh=fresh)
    assert [c.outcome for c in check.comparisons] == ["against", "as claimed"]
    assert check.verdict == "mixed"
    assert "converged before epoch 60 in 2/10" in check.comparisons[0].text
    assert "at all in 9/10" in check.comparisons[0].text and "n = 20" in check.comparisons[1].text


def test_verdict_words():
    a, b, c = "as claimed", "against", "too close to call"
    assert [verdict(x) for x in ([a, a], [a, c], [a, b], [b, c], [c, c], [])] == [
        "holds", "holds in part", "mixed", "fails", "too close to call", "no data"]
