"""A study whose batches train in a second process while the next batch is asked
(hydra.sweeper.overlap, the batched launcher), and random search launched in merged batches."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from conftest import ROOT, run_cli
from rnnexp.tuning import storage as optuna_storage

ENV = {"PYTHONPATH": str(ROOT)}
STUDY = ["hydra.sweeper.study_name=s", "hydra.sweeper.sampler.seed=0", "hydra.sweeper.seeds=[0,1]",
         "optimizer.lr=tag(log, interval(0.001, 0.3))", "optimizer.alpha=interval(0.5, 0.99)",
         "train.checkpoint=false"]
TPE = ["hydra/sweeper=optuna", "hydra/sweeper/sampler=tpe",
       "hydra.sweeper.sampler.n_startup_trials=3", "hydra.sweeper.sampler.constant_liar=true"]


def _study(tmp_path: Path, name: str, *args: str, wait: bool = True):
    out = tmp_path / name
    argv = ["-m", *args, f"hydra.sweep.dir={out}", f"hydra.sweeper.storage={out}.log"]
    if not wait:
        cmd = [str(Path(sys.executable).parent / "rnnexp-train"), *argv]
        return out, subprocess.Popen(cmd, cwd=tmp_path, env={**os.environ, **ENV},
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return out, run_cli("rnnexp-train", *argv, cwd=tmp_path, env=ENV)


def _study_ok(tmp_path: Path, name: str, *args: str) -> tuple[Path, str]:
    """A study that must succeed: its sweep dir and its output."""
    out, proc = _study(tmp_path, name, *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out, proc.stdout + proc.stderr


def _asked_before_told(trials, told: int, asked: int, size: int) -> bool:
    """Whether the batch of `size` trials from number `asked` started before the batch from
    `told` was told (its last trial completed)."""
    return (min(t.datetime_start for t in trials[asked : asked + size])
            < max(t.datetime_complete for t in trials[told : told + size]))


def _load(out: Path) -> optuna.Study:
    return optuna.load_study(study_name="s", storage=optuna_storage.open_storage(f"{out}.log"))


def _params(study: optuna.Study) -> list[tuple]:
    return [(t.number, t.state, tuple(sorted(t.params.items())), t.value) for t in study.trials]


@pytest.mark.slow
def test_an_overlapped_study_asks_each_batch_while_the_last_one_trains(tmp_path):
    args = [*TPE, *STUDY, "train.epochs=15", "hydra.sweeper.n_trials=12", "hydra.sweeper.n_jobs=3"]
    runs = {}
    for name in ("a", "b"):
        runs[name] = _load(_study_ok(tmp_path, name, *args)[0])
    # the same seed and n_jobs give the same trials, outcomes included
    assert _params(runs["a"]) == _params(runs["b"])
    trials = runs["a"].trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 12
    # batch k + 1 (trials 3k+3..3k+5) was asked before batch k was told
    for k in range(3):
        assert _asked_before_told(trials, 3 * k, 3 * k + 3, 3), k
    # every job wrote its run files, and the trial's value is the mean of its seeds' final losses
    for t in trials:
        losses = [json.loads((tmp_path / "a" / str(n) / "metrics.json").read_text())["final_loss"]
                  for n in t.user_attrs["job_nums"]]
        assert t.value == pytest.approx(sum(losses) / 2, rel=1e-12)

    # overlap=false: each batch asked once the last one is told, as hydra-optuna-sweeper does
    out, _ = _study_ok(tmp_path, "c", *args, "hydra.sweeper.overlap=false")
    trials = _load(out).trials
    for k in range(3):
        assert not _asked_before_told(trials, 3 * k, 3 * k + 3, 3), k
    # the sampler's random start-up trials are the same either way
    assert _params(_load(out))[:3] == _params(runs["a"])[:3]


@pytest.mark.slow
def test_random_search_in_merged_launches_draws_the_trials_of_one_batch_at_a_time(tmp_path):
    args = ["hydra/sweeper=optuna", "hydra/sweeper/sampler=random", *STUDY, "train.epochs=15",
            "hydra.sweeper.n_trials=10", "hydra.sweeper.n_jobs=2"]
    merged, output = _study_ok(tmp_path, "merged", *args)
    # 10 trials x 2 seeds in one launch, not five launches of 4 jobs
    assert output.count("Batched launcher: 20 jobs in 1 batches;") == 1
    one_by_one, _ = _study_ok(tmp_path, "basic", *args, "hydra/launcher=basic")
    a, b = _load(merged), _load(one_by_one)
    assert [t.params for t in a.trials] == [t.params for t in b.trials]
    assert [t.value for t in a.trials] == pytest.approx([t.value for t in b.trials], rel=1e-9)
    trials = pd.read_csv(merged / "trials.csv")
    assert len(trials) == 10 and (trials.state == "COMPLETE").all()


@pytest.mark.slow
def test_random_search_trains_two_launches_at_once_with_the_trials_of_one_after_the_other(tmp_path):
    """A launch of 110 trials x 5 seeds is all the merging allows (about 1024 jobs): the four
    launches go two at a time, one in the second process and one in the sweeper's, and the study
    is the one launches in turn give."""
    args = ["hydra/sweeper=optuna", "hydra/sweeper/sampler=random", *STUDY[:2],
            "hydra.sweeper.seeds=[0,1,2,3,4]", *STUDY[3:], "train.epochs=5",
            "hydra.sweeper.n_trials=440", "hydra.sweeper.n_jobs=110"]
    both, output = _study_ok(tmp_path, "both", *args)
    assert output.count("Batched launcher: 550 jobs in 1 batches;") == 4
    in_turn, _ = _study_ok(tmp_path, "in_turn", *args, "hydra.sweeper.overlap=false")
    a, b = _load(both), _load(in_turn)
    assert _params(a) == _params(b)
    for first, second in ((0, 110), (220, 330)):  # the second of a pair started before the first ended
        assert _asked_before_told(a.trials, first, second, 110), first
    assert sorted(p.name for p in both.iterdir() if p.is_dir()) == \
        sorted(p.name for p in in_turn.iterdir() if p.is_dir())


@pytest.mark.slow
def test_merged_parts_are_each_held_to_max_failure_rate(tmp_path):
    """A part of n_jobs trials failing beyond max_failure_rate stops the study after its launch;
    the launch's other trials ran, and are told."""
    args = ["hydra/sweeper=optuna", "hydra/sweeper/sampler=random", *STUDY, "train.epochs=15",
            "hydra.sweeper.n_trials=8", "hydra.sweeper.n_jobs=2", "hydra.sweeper.max_failure_rate=0",
            # a trial fails when its objective cannot be computed: here when a seed ends above 1
            "hydra.sweeper.objective='final_loss if final_loss < 1 else undefined_name'"]
    out, proc = _study(tmp_path, "f", *args)
    assert proc.returncode != 0
    study = _load(out)
    assert TrialState.RUNNING not in [t.state for t in study.trials]
    failed = [t.number for t in study.trials if t.state == TrialState.FAIL]
    assert failed, "the space gives failing trials with this seed"
    assert len(study.trials) == 8  # one launch: every trial ran and was told


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _gone(pid: int, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


def _wait_for_trials(out: Path, n: int, proc, timeout: float = 120) -> None:
    journal = Path(f"{out}.log")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if journal.exists() and journal.read_text().count('"state":1') >= n:
            return
        time.sleep(0.05)
    raise AssertionError(f"{n} trials did not finish: {proc.poll()}")


LONG = [*TPE, *STUDY, "hydra.sweeper.n_trials=40", "hydra.sweeper.n_jobs=2", "train.epochs=400"]


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("kill", ["sweeper", "trainer"])
def test_a_killed_process_leaves_no_trial_running_that_a_resume_does_not_finish(tmp_path, kill):
    """SIGKILL of the sweeper takes its training process with it; SIGKILL of the training process
    stops the sweep in one line, its trials failed. The same command then finishes the study."""
    out, proc = _study(tmp_path, "k", *LONG, wait=False)
    _wait_for_trials(out, 4, proc)
    children = _children(proc.pid)
    assert len(children) == 1, children  # the process that trains the batches
    os.kill(proc.pid if kill == "sweeper" else children[0], signal.SIGKILL)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert _gone(children[0]), "the training process outlived its sweeper"
    if kill == "trainer":
        assert "the process that trains the sweep's batches ended (killed by signal 9)" in output
        assert TrialState.RUNNING not in [t.state for t in _load(out).trials]
    _study_ok(tmp_path, "k", *LONG)
    study = _load(out)
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(done) == 40 and TrialState.RUNNING not in [t.state for t in study.trials]


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_an_interrupt_stops_both_processes_and_the_study_resumes(tmp_path):
    out, proc = _study(tmp_path, "i", *LONG, wait=False)
    _wait_for_trials(out, 4, proc)
    (child,) = _children(proc.pid)
    proc.send_signal(signal.SIGINT)  # a Ctrl-C reaches the sweeper; it stops its trainer
    proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert _gone(child)
    study = _load(out)
    assert TrialState.RUNNING not in [t.state for t in study.trials]
    _study_ok(tmp_path, "i", *LONG)
    assert sum(t.state == TrialState.COMPLETE for t in _load(out).trials) == 40
