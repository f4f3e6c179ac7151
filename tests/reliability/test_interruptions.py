"""SIGKILL at seeded random moments, then the same command again until it completes: nothing is
lost, nothing is counted twice, and the result is the one an uninterrupted run gives.

Each kill hits the whole process group (the command starts a new session), so the training
children die with their parent, as they would when a machine loses power or a job scheduler
kills the job. RNNEXP_KILL_POINTS sets how many kills each test makes (default 3; 20 or more for
the full proof); RNNEXP_KILL_SEED picks the moments.
"""
import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml
from optuna.trial import TrialState

from rnnexp.tuning import storage as optuna_storage

pytestmark = pytest.mark.slow  # every test starts, kills and restarts the console scripts

KILL_POINTS = int(os.environ.get("RNNEXP_KILL_POINTS", "3"))
KILL_SEED = int(os.environ.get("RNNEXP_KILL_SEED", "0"))
KILLS_PER_ROUND = 5  # then the round runs to the end and is checked; the next starts afresh
BIN = Path(sys.executable).parent
SWEEPS = ("q2ii_adagrad", "q2ii_tuned")  # 4 runs in --quick --seeds 1


def _start(cmd: list[str], cwd: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def _finish(proc: subprocess.Popen, timeout: float = 300) -> None:
    _, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]


def run_with_kills(cmd: list[str], cwd: Path, rng: random.Random, kills: int, span: float) -> int:
    """Start `cmd`, SIGKILL its process group after a random moment in (0, span) s, start it
    again, ... `kills` times or until it completes on its own; then let it complete.
    Returns how many kills hit a running command."""
    hit = 0
    while hit < kills:
        proc = _start(cmd, cwd)
        try:
            proc.wait(timeout=rng.uniform(0.05, span))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            hit += 1
            continue
        _finish(proc)  # it finished before the kill moment
        return hit
    _finish(_start(cmd, cwd))
    return hit


def _timed_run(cmd: list[str], cwd: Path) -> float:
    import time
    start = time.monotonic()
    _finish(_start(cmd, cwd))
    return time.monotonic() - start


# ---------------------------------------------------------------- rnnexp-reproduce

def reproduce_cmd(results: Path) -> list[str]:
    return [str(BIN / "rnnexp-reproduce"), "--quick", "--seeds", "1", "--only", *SWEEPS,
            "--results", str(results)]


def comparable_results(results: Path) -> dict:
    """runs.csv without wall times, every table CSV, and the finished run dirs."""
    runs = pd.read_csv(results / "runs.csv").drop(columns=["wall_time_s"])
    assert not runs.run_dir.duplicated().any()
    tables = {p.name: p.read_text() for p in sorted((results / "tables").glob("*.csv"))}
    done = sorted(p.parent.relative_to(results).as_posix() for p in results.rglob("metrics.json"))
    return {"runs": runs.sort_values("run_dir").reset_index(drop=True), "tables": tables,
            "done": done}


def _kill_rounds(tmp_path, cmd_for, check_round, span: float) -> int:
    rng, survived, n = random.Random(KILL_SEED), 0, 0
    while survived < KILL_POINTS:
        target = tmp_path / f"killed{n}"
        target.mkdir()
        survived += run_with_kills(cmd_for(target), target, rng,
                                   min(KILLS_PER_ROUND, KILL_POINTS - survived), span)
        check_round(target)
        n += 1
    return survived


def test_reproduce_killed_at_random_moments_ends_as_an_uninterrupted_run(tmp_path, tally):
    whole = tmp_path / "whole"
    span = _timed_run(reproduce_cmd(whole), tmp_path)
    expected = comparable_results(whole)
    assert len(expected["runs"]) == 4

    def check_round(target: Path) -> None:
        got = comparable_results(target / "results")
        assert got["done"] == expected["done"]  # no run lost, none twice
        assert got["tables"] == expected["tables"]
        pd.testing.assert_frame_equal(got["runs"], expected["runs"])

    survived = _kill_rounds(tmp_path, lambda t: reproduce_cmd(t / "results"), check_round, span)
    tally("kill_points", survived)
    tally("lost", 0)


# ---------------------------------------------------------------- an Optuna study

N_TRIALS = 4


def study_cmd(target: Path) -> list[str]:
    return [str(BIN / "rnnexp-train"), "-m", "hydra/sweeper=optuna",
            "hydra.sweeper.study_name=killed", f"hydra.sweeper.storage={target / 'study.log'}",
            f"hydra.sweep.dir={target / 'sweep'}", f"hydra.sweeper.n_trials={N_TRIALS}",
            "hydra.sweeper.sampler.seed=0", "optimizer.lr=tag(log, interval(0.001, 1))",
            "train.epochs=50"]


def check_study(target: Path) -> None:
    """What a killed study must still promise. The trials themselves differ from an uninterrupted
    study's: a kill abandons the running trial (it is marked failed and not counted) and the
    sampler then proposes from a different history, so only a sampler that ignores history (a
    grid) would give the same trials. What is compared instead: exactly n_trials finished trials,
    no trial left running, every job number (hence job dir) used by one trial only, no job dir
    that belongs to no trial, and each finished trial's job dir holding that trial's own config
    and metrics (so no dir was overwritten by another trial)."""
    study = optuna.load_study(study_name="killed",
                              storage=optuna_storage.open_storage(str(target / "study.log")))
    finished = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == N_TRIALS
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]
    owners = [n for t in study.trials for n in t.user_attrs.get("job_nums", [])]
    assert len(owners) == len(set(owners))
    job_dirs = {int(p.name) for p in (target / "sweep").iterdir() if p.is_dir() and p.name.isdigit()}
    assert job_dirs <= set(owners)
    for t in finished:
        job = target / "sweep" / str(t.user_attrs["job_nums"][0])
        metrics = json.loads((job / "metrics.json").read_text())
        config = yaml.safe_load((job / ".hydra" / "config.yaml").read_text())
        assert config["optimizer"]["lr"] == pytest.approx(t.params["optimizer.lr"], rel=1e-12)
        if t.state == TrialState.COMPLETE:
            assert t.value == metrics["final_loss"]


def test_study_killed_at_random_moments_keeps_its_promises(tmp_path, tally):
    whole = tmp_path / "whole"
    whole.mkdir()
    span = _timed_run(study_cmd(whole), whole)
    check_study(whole)
    survived = _kill_rounds(tmp_path, study_cmd, check_study, span)
    tally("kill_points", survived)
    tally("lost", 0)
