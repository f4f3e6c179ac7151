"""Tables, fit verdicts, claim checks and REPORT.md from synthetic runs (nothing is trained)."""
import shutil

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
    fake_run(results / "runs" / "tiny" / "a=0.5,lr=0.4,h=10,s=1",
             {"optimizer.alpha": 0.5, "optimizer.lr": 0.4, "model.hidden_size": 10}, seed=1,
             final_loss=0.3)
    (results / "plots" / "tiny.png").write_bytes(b"a stray edit")  # the PNG is checked too
    report.build_report(results, SECTIONS, sweeps_dir=sweeps)
    assert drawn == ["tiny.png"]
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


def test_a_changed_sweep_file_is_read_again(tiny):
    sweeps, results = tiny
    report.build_report(results, SECTIONS, sweeps_dir=sweeps)
    (sweeps / "tiny.yaml").write_text(SWEEP.replace('title: "Tiny: ', 'title: "Tiny again: '))
    ctx = report.build_report(results, SECTIONS, sweeps_dir=sweeps)
    assert ctx.sweeps[0].title.startswith("Tiny again: ")
    assert "# Tiny again: " in (results / "tables" / "tiny.md").read_text()


# ---------------------------------------------------------------- claim checks on made-up data

def _sizes(values_by_seed):
    return pd.DataFrame([{"group": "Adam", "size": s, "seed": seed, "value": v}
                         for seed, values in enumerate(values_by_seed)
                         for s, v in zip((5, 20, 50), values)])


def test_hidden_size_claim_holds_and_fails():
    holds = check_falls_with_size(_sizes([[0.1, 0.01, 0.001], [0.2, 0.02, 0.002]]))
    assert holds.verdict == "holds" and (holds.holds, holds.total) == (2, 2)
    assert "Adam 2/2 seeds (hidden 5/20/50)" in holds.summary
    fails = check_falls_with_size(_sizes([[0.1, 0.2, 0.3], [0.1, 0.01, 0.05]]))
    assert fails.verdict == "fails" and "Adam 0/2 seeds" in fails.summary


def test_bias_claim_counts_pairs():
    frame = pd.DataFrame({"table": "q1", "row": ["epochs 1000"] * 3 + ["epochs 2000"] * 3,
                          "seed": [0, 1, 2] * 2, "with_bias": [1, 1, 3, 1, 1, 1],
                          "without_bias": [2, 2, 2, 2, 2, 2]})
    check = check_lower_with_bias(frame)
    assert (check.holds, check.total, check.verdict) == (5, 6, "holds mostly")
    assert "epochs 1000: 2/3" in check.details[0] and "epochs 2000: 3/3" in check.details[0]


def test_spelling_claim_sees_the_word_lost_while_the_loss_falls():
    loss = np.array([3.0, 2.0, 1.0, 0.5, 0.2])
    lost = (loss, np.array([0, 1, 0, 1, 1], bool), True)  # right at 2, wrong at 3 though loss fell
    steady = (loss, np.array([0, 0, 1, 1, 1], bool), True)
    check = check_spelling_vs_loss([("a", *lost), ("b", *steady)])
    assert check.verdict == "holds" and "in 1/2 the string was right and turned wrong" in check.summary
    never = check_spelling_vs_loss([("c", loss, np.ones(5, bool), False)])
    assert never.verdict == "fails"


def test_fastest_and_tuned_claims():
    frame = pd.DataFrame({"comparison": ["lr 0.4"] * 4, "seed": [0, 0, 1, 1],
                          "group": ["RMSprop", "Adam"] * 2, "value": [1e-5, 1e-3, 1e-2, 1e-3]})
    check = check_fastest(frame)
    assert (check.holds, check.total) == (1, 2)
    tuned = check_converges_within(pd.Series([48, 59, 75, np.nan]), limit=60)
    assert (tuned.holds, tuned.total, tuned.verdict) == (2, 4, "holds mostly")
    assert "converged at all in 3/4" in tuned.summary and "median 59" in tuned.summary


def test_verdict_words():
    assert [verdict(*x) for x in ((3, 3), (2, 3), (1, 3), (0, 3), (0, 0))] == [
        "holds", "holds mostly", "mostly fails", "fails", "no data"]
