"""Damaged state left by a crash, a full disk or a stray editor: each damaged file is reported by
name and skipped (run dirs) or repaired (a study journal's tail), never counted as a result and
never a crash."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from conftest import run_cli
from fake_runs import fake_run
from rnnexp.tuning import storage as optuna_storage

pytestmark = pytest.mark.slow  # every test runs the console scripts

BIN = Path(sys.executable).parent


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


# (run dir name, how it is damaged, what rnnexp-report must say about it)
RUN_DIR_DAMAGE = [
    ("truncated_metrics", lambda d: _truncate(d / "metrics.json"), "metrics.json is not valid JSON"),
    ("metrics_without_keys", lambda d: (d / "metrics.json").write_text("{}"), "metrics.json lacks"),
    ("empty_history", lambda d: (d / "history.csv").write_text(""), "history.csv is empty"),
    ("truncated_history", lambda d: _truncate(d / "history.csv"), "history.csv ends at epoch"),
    ("no_hydra_dir", lambda d: shutil.rmtree(d / ".hydra"), "no .hydra/config.yaml"),
    ("garbage_config", lambda d: (d / ".hydra" / "config.yaml").write_bytes(b"\xff\xfe: [\n"),
     ".hydra/config.yaml is not readable YAML"),
    ("no_metrics", lambda d: (d / "metrics.json").unlink(), "no metrics.json"),
]


def test_damaged_run_dirs_are_named_and_left_out_of_every_table(tmp_path, tally):
    sweep = tmp_path / "results" / "runs" / "quick" / "q2ii_tuned"
    values = {"optimizer": "rmsprop", "optimizer.lr": 0.01, "train.epochs": 20}
    good = [fake_run(sweep / f"good{s}", values, seed=s) for s in range(2)]
    for name, damage, _ in RUN_DIR_DAMAGE:
        damage(fake_run(sweep / name, values, seed=9))
    proc = run_cli("rnnexp-report", "--results", str(tmp_path / "results"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    for name, _, reason in RUN_DIR_DAMAGE:
        assert f"skipped runs/quick/q2ii_tuned/{name}: {reason}" in proc.stderr, proc.stderr
    runs = pd.read_csv(tmp_path / "results" / "runs.csv")
    assert sorted(runs.run_dir) == [f"runs/quick/q2ii_tuned/{d.name}" for d in good]
    assert 9 not in set(runs.seed)  # no damaged run reaches a table
    report = (tmp_path / "results" / "REPORT.md").read_text()
    assert all(f"`runs/quick/q2ii_tuned/{name}`" in report for name, _, _ in RUN_DIR_DAMAGE)
    tally("corrupt_files", len(RUN_DIR_DAMAGE))


# ---------------------------------------------------------------- a study's journal file

def study(target: Path, n_trials: int) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "rnnexp-train"), "-m", "hydra/sweeper=optuna", "hydra.sweeper.study_name=s",
         f"hydra.sweeper.storage={target / 'study.log'}", f"hydra.sweep.dir={target / 'sweep'}",
         f"hydra.sweeper.n_trials={n_trials}", "hydra.sweeper.sampler.seed=0",
         "optimizer.lr=interval(0.01, 0.1)", "train.epochs=3"],
        cwd=target, capture_output=True, text=True, timeout=300)


def finished(target: Path) -> list:
    s = optuna.load_study(study_name="s", storage=optuna_storage.open_storage(str(target / "study.log")))
    return [t for t in s.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]


JOURNAL_DAMAGE = [
    ("garbage appended", lambda p: p.write_bytes(p.read_bytes() + b"\x00\x97garbage\nmore}\n")),
    ("truncated mid-record", lambda p: _truncate(p, 0.8)),
]


def test_a_damaged_journal_tail_is_cut_off_named_and_the_study_completes(tmp_path, tally):
    first = tmp_path / "first"
    first.mkdir()
    assert study(first, 2).returncode == 0
    for i, (what, damage) in enumerate(JOURNAL_DAMAGE):
        target = tmp_path / f"case{i}"
        shutil.copytree(first, target)
        journal = target / "study.log"
        journal.write_bytes(journal.read_bytes().replace(str(first).encode(), str(target).encode()))
        damage(journal)
        proc = study(target, 3)
        assert proc.returncode == 0, (what, proc.stdout[-2000:], proc.stderr[-2000:])
        assert f"Optuna journal {journal}: cut off" in proc.stdout + proc.stderr, what
        assert (target / "study.log.damaged").stat().st_size > 0
        assert len(finished(target)) == 3, what
    tally("corrupt_files", len(JOURNAL_DAMAGE))


def test_a_file_that_is_no_journal_is_refused_and_left_as_it_was(tmp_path, tally):
    storage = tmp_path / "notes.log"
    text = b"my notes\n\x00\x01 binary \xff\n"
    storage.write_bytes(text)
    proc = subprocess.run(
        [str(BIN / "rnnexp-train"), "-m", "hydra/sweeper=optuna", "hydra.sweeper.study_name=s",
         f"hydra.sweeper.storage={storage}", f"hydra.sweep.dir={tmp_path / 'sweep'}",
         "optimizer.lr=interval(0.01, 0.1)", "train.epochs=3"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"cannot open Optuna storage '{storage}': not an Optuna journal file" in proc.stderr
    assert storage.read_bytes() == text
    tally("corrupt_files")
