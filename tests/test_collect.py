"""rnnexp.collect on synthetic run dirs: one tidy row per good run, bad dirs named and skipped."""
import json
import shutil
import warnings

import pandas as pd
import pytest

from fake_runs import fake_run
from rnnexp.collect import (Problem, RunCache, RunDirWarning, collect, tidy_runs,
                            write_runs_csv)


@pytest.fixture
def results(tmp_path):
    runs = tmp_path / "runs"
    fake_run(runs / "sweep_a" / "optimizer.lr=0.01,seed=0", {"optimizer.lr": 0.01}, seed=0)
    fake_run(runs / "sweep_a" / "optimizer.lr=0.4,seed=0", {"optimizer.lr": 0.4}, seed=0,
             final_loss=1e-4)
    fake_run(runs / "sweep_b" / "x", {"optimizer": "adam", "optimizer.betas": [0.9, 0.99]}, seed=1)
    fake_run(tmp_path / "runs" / "by_hand", {"optimizer.lr": 0.01}, seed=3)
    return tmp_path


def test_every_good_run_is_one_row_whatever_made_it(results):
    c = collect(results / "runs", base=results, warn=False)
    assert c.problems == []
    assert sorted(c.runs.run_dir) == ["runs/by_hand", "runs/sweep_a/optimizer.lr=0.01,seed=0",
                                      "runs/sweep_a/optimizer.lr=0.4,seed=0", "runs/sweep_b/x"]
    row = c.runs.set_index("run_dir").loc["runs/sweep_a/optimizer.lr=0.4,seed=0"]
    assert row["optimizer.lr"] == 0.4 and row["model.hidden_size"] == 5
    assert row.final_loss == pytest.approx(1e-4) and row.status == "completed"
    betas = c.runs.set_index("run_dir").loc["runs/sweep_b/x", "optimizer.betas"]
    assert json.loads(betas) == [0.9, 0.99]  # lists are one comparable cell
    history = c.history("runs/by_hand")
    assert list(history.columns[:2]) == ["epoch", "loss"] and len(history) == 20


def test_runs_csv_keeps_what_varies_and_every_metric(results, tmp_path):
    c = collect(results / "runs", base=results, warn=False)
    frame = tidy_runs(c)
    assert "optimizer.lr" in frame and "seed" in frame and "word" in frame
    assert "model.num_layers" not in frame  # the same in every run
    for metric in ("final_loss", "min_loss", "epochs_to_converge", "generated", "spells_word",
                   "status", "wall_time_s"):
        assert metric in frame
    path = write_runs_csv(c, tmp_path / "runs.csv")
    again = pd.read_csv(path)
    assert len(again) == 4 and again.run_dir.iloc[0] == "runs/by_hand"


def _corrupt(results):
    runs = results / "runs" / "bad"
    fake_run(runs / "truncated_metrics", {}, seed=0)
    text = (runs / "truncated_metrics" / "metrics.json").read_text()
    (runs / "truncated_metrics" / "metrics.json").write_text(text[: len(text) // 2])
    fake_run(runs / "empty_history", {}, seed=0)
    (runs / "empty_history" / "history.csv").write_text("")
    fake_run(runs / "missing_history", {}, seed=0)
    (runs / "missing_history" / "history.csv").unlink()
    fake_run(runs / "short_history", {}, seed=0)
    lines = (runs / "short_history" / "history.csv").read_text().splitlines()
    (runs / "short_history" / "history.csv").write_text("\n".join(lines[:8]) + "\n")
    fake_run(runs / "no_hydra", {}, seed=0)
    for f in (runs / "no_hydra" / ".hydra").iterdir():
        f.unlink()
    (runs / "no_hydra" / ".hydra").rmdir()
    fake_run(runs / "killed", {}, seed=0)
    (runs / "killed" / "metrics.json").unlink()


def test_damaged_run_dirs_are_named_warned_about_and_skipped(results):
    _corrupt(results)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        c = collect(results / "runs", base=results)
    reasons = {p.run_dir.split("/")[-1]: p.reason for p in c.problems}
    assert set(reasons) == {"truncated_metrics", "empty_history", "missing_history",
                            "short_history", "no_hydra", "killed"}
    assert "not valid JSON" in reasons["truncated_metrics"]
    assert "empty" in reasons["empty_history"]
    assert "no history.csv" in reasons["missing_history"]
    assert "truncated" in reasons["short_history"]
    assert ".hydra" in reasons["no_hydra"]
    assert "no metrics.json" in reasons["killed"]
    assert len(c.runs) == 4 and not c.runs.run_dir.str.contains("bad").any()
    named = [str(w.message) for w in caught if issubclass(w.category, RunDirWarning)]
    assert len(named) == 6 and all(m.startswith("skipped run dir runs/bad/") for m in named)


def test_empty_or_missing_root_is_an_empty_table(tmp_path):
    c = collect(tmp_path / "nothing", warn=False)
    assert c.runs.empty and c.problems == []


# ---------------------------------------------------------------- the cache of what was read

def _collect_cached(results, folder):
    cache = RunCache(folder)
    c = collect(results / "runs", base=results, warn=False, cache=cache)
    histories = {r: c.history(r) for r in c.runs.run_dir}
    cache.save()
    return c, histories


def test_a_cache_reads_again_only_the_run_dirs_that_changed(results, tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    plain = collect(results / "runs", base=results, warn=False)
    first, _ = _collect_cached(results, folder)
    pd.testing.assert_frame_equal(first.runs, plain.runs)

    import rnnexp.collect as collect_module
    read = []
    real_read_run, real_read_history = collect_module.read_run, collect_module.read_history
    monkeypatch.setattr(collect_module, "read_run",
                        lambda d: read.append(d.name) or real_read_run(d))
    monkeypatch.setattr(collect_module, "read_history",
                        lambda d: read.append("history " + d.name) or real_read_history(d))
    again, histories = _collect_cached(results, folder)
    assert read == []  # nothing changed: nothing parsed
    pd.testing.assert_frame_equal(again.runs, plain.runs)
    for run_dir, history in histories.items():
        pd.testing.assert_frame_equal(history, plain.history(run_dir), check_exact=True)

    # re-trained with other numbers, damaged, removed: each one is read (or dropped) again
    fake_run(results / "runs" / "sweep_a" / "optimizer.lr=0.4,seed=0", {"optimizer.lr": 0.4},
             seed=0, final_loss=3e-3)
    (results / "runs" / "by_hand" / "metrics.json").write_text("{")
    shutil.rmtree(results / "runs" / "sweep_b")
    read.clear()
    changed, histories = _collect_cached(results, folder)
    assert sorted(read) == ["by_hand", "history optimizer.lr=0.4,seed=0", "optimizer.lr=0.4,seed=0"]
    fresh = collect(results / "runs", base=results, warn=False)
    pd.testing.assert_frame_equal(changed.runs, fresh.runs)
    assert changed.problems == fresh.problems == [
        Problem("runs/by_hand", "metrics.json is not valid JSON (truncated or damaged)")]
    row = changed.runs.set_index("run_dir").loc["runs/sweep_a/optimizer.lr=0.4,seed=0"]
    assert row.final_loss == pytest.approx(3e-3)
    assert histories["runs/sweep_a/optimizer.lr=0.4,seed=0"].loss.iloc[-1] == pytest.approx(3e-3)

    # a damaged run dir stays named (and warned about) when it comes from the cache
    read.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cached = collect(results / "runs", base=results, cache=RunCache(folder))
    assert read == [] and cached.problems == fresh.problems
    assert [str(w.message) for w in caught if issubclass(w.category, RunDirWarning)] == [
        "skipped run dir runs/by_hand: metrics.json is not valid JSON (truncated or damaged)"]


def test_a_damaged_cache_is_ignored(results, tmp_path):
    folder = tmp_path / "cache"
    _collect_cached(results, folder)
    plain = collect(results / "runs", base=results, warn=False)
    for name, junk in (("histories.npz", b"PK\x03\x04 not a zip"),
                       ("collect.json", b'{"version": 1')):
        (folder / name).write_bytes(junk)
        c, histories = _collect_cached(results, folder)
        pd.testing.assert_frame_equal(c.runs, plain.runs)
        for run_dir, history in histories.items():
            pd.testing.assert_frame_equal(history, plain.history(run_dir), check_exact=True)
