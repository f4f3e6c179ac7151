"""rnnexp-train through a real subprocess. (Bad input to it, one case per kind of message, and
HYDRA_FULL_ERROR: tests/reliability/test_bad_inputs.py.)"""
import json

import pandas as pd
import pytest

from conftest import run_cli

pytestmark = pytest.mark.slow


def test_single_run_writes_metrics_and_history(tmp_path):
    out = tmp_path / "run"
    proc = run_cli("rnnexp-train", "word=edgement", "model=torch_rnn", "model.hidden_size=5",
                   "optimizer=rmsprop", "optimizer.lr=0.4", "optimizer.alpha=0.5",
                   "train.epochs=100", f"hydra.run.dir={out}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "final loss" in proc.stdout and "generates 'edgement'" in proc.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    history = pd.read_csv(out / "history.csv")
    assert list(history.columns) == ["epoch", "loss", "spelled"]
    assert len(history) == 100 and history.loss.iloc[-1] == pytest.approx(metrics["final_loss"], rel=1e-12)
    assert (out / ".hydra" / "config.yaml").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # nothing else in the cwd


def test_multirun_writes_one_dir_per_job(tmp_path):
    proc = run_cli("rnnexp-train", "-m", "optimizer=adam,adagrad", "optimizer.lr=0.01,0.4",
                   "seed=0,1", "train.epochs=5", f"hydra.sweep.dir={tmp_path / 'sweep'}",
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    jobs = sorted((tmp_path / "sweep").glob("*/metrics.json"))
    assert len(jobs) == 8
    seen = {(m["optimizer"], m["optimizer_args"]["lr"], m["seed"])
            for m in (json.loads(p.read_text()) for p in jobs)}
    assert len(seen) == 8
