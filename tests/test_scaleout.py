"""One study, many workers: real rnnexp-train processes on PostgreSQL and on a journal file, a worker
killed with SIGKILL, and the joblib and submitit_local launchers (docs/scaling.md).

PostgreSQL: 127.0.0.1:5432, trust auth; each run of this file works in a fresh database
rnnexp_test_<random>, dropped at the end. Trials are tiny (a 3-unit NumPy RNN, a few epochs).
Every test that starts a worker, kills one or needs a database is marked slow.
"""
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from rnnexp.tuning import storage as optuna_storage

optuna.logging.set_verbosity(optuna.logging.WARNING)

PG_SERVER = "postgresql://root@127.0.0.1:5432"
MYSQL_SERVER = "mysql+pymysql://root@127.0.0.1:3306"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
# a cheap trial: the NumPy RNN with 3 hidden units, 3 epochs of "edgement"
TINY = ["model=numpy_rnn", "optimizer=adagrad", "model.hidden_size=3", "train.epochs=3",
        "hydra/sweeper/sampler=random", "optimizer.lr=tag(log, interval(0.01, 1))"]
# a trial that runs until it is killed (reports rarely: each one is a database write)
ENDLESS = ["train.epochs=100000000", "hydra.sweeper.report_every=100000000"]
HEARTBEAT = ["hydra.sweeper.heartbeat_interval=1", "hydra.sweeper.grace_period=2"]


# ------------------------------------------------------------------------------ servers
def _admin_pg():
    psycopg2 = pytest.importorskip("psycopg2", reason="the dist extra is not installed")
    try:
        conn = psycopg2.connect(host="127.0.0.1", port=5432, user="root", dbname="postgres",
                                connect_timeout=3)
    except psycopg2.OperationalError as err:
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 is unreachable: {str(err).strip()}")
    conn.autocommit = True  # CREATE / DROP DATABASE cannot run inside a transaction
    return conn


@pytest.fixture(scope="module")
def pg_url():
    """A fresh PostgreSQL database for this run of the file, dropped afterwards."""
    conn = _admin_pg()
    name = f"rnnexp_test_{secrets.token_hex(4)}"
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.close()


@pytest.fixture
def mysql_url():
    pymysql = pytest.importorskip("pymysql", reason="the dist extra is not installed")
    try:
        conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", connect_timeout=3,
                               autocommit=True)
    except pymysql.err.OperationalError as err:
        pytest.skip(f"MySQL/MariaDB at 127.0.0.1:3306 is unreachable: {err}")
    name = f"rnnexp_test_{secrets.token_hex(4)}"
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    try:
        yield f"{MYSQL_SERVER}/{name}"
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.close()


# ------------------------------------------------------------------------------ workers
def start_worker(tmp_path: Path, storage: str, study: str, *overrides: str) -> subprocess.Popen:
    """`rnnexp-train -m hydra/sweeper=optuna ...` as its own process, all workers sharing one
    sweep dir; its output goes to a log file (a full pipe would block it)."""
    cmd = [str(Path(sys.executable).parent / "rnnexp-train"), "-m", "hydra/sweeper=optuna",
           f"hydra.sweeper.storage={storage}", f"hydra.sweeper.study_name={study}",
           f"hydra.sweep.dir={tmp_path / 'sweep'}", *TINY, *overrides]
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env["OMP_NUM_THREADS"] = "1"  # processes that share the cores: one compute thread each
    log = open(tmp_path / f"worker-{secrets.token_hex(3)}.log", "w")
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
                            text=True)
    proc.log_path = Path(log.name)
    log.close()
    return proc


def wait_all(procs, timeout: float = 300) -> None:
    for p in procs:
        rc = p.wait(timeout=timeout)
        assert rc == 0, p.log_path.read_text()[-3000:]


def load(storage: str, study: str) -> optuna.Study:
    return optuna.load_study(study_name=study, storage=optuna_storage.open_storage(storage))


def running_trial_of(proc: subprocess.Popen, storage: str, study: str, timeout: float = 60):
    """The trial this worker is running, once it runs one with its parameters drawn."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.log_path.read_text()[-3000:]
        try:
            for t in load(storage, study).get_trials(states=(TrialState.RUNNING,)):
                # with its parameters set: a kill before that leaves nothing to retry with
                if t.user_attrs.get("worker", {}).get("pid") == proc.pid and t.params:
                    return t
        except KeyError:
            pass  # the study does not exist yet
        time.sleep(0.2)
    raise AssertionError(f"worker {proc.pid} ran no trial within {timeout} s")


def kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()  # reaped: the pid is gone, not a zombie


def assert_study_filled(study: optuna.Study, n_trials: int, sweep: Path) -> list:
    """Exactly n_trials finished trials, none still running, each with its own job dir."""
    finished = study.get_trials(states=FINISHED)
    assert len(finished) == n_trials
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
    numbers = [t.number for t in study.trials]
    assert len(numbers) == len(set(numbers))
    dirs = [d for t in finished for d in t.user_attrs["job_dirs"]]
    assert len(dirs) == len(set(dirs)) == n_trials
    for t in finished:
        run_dir = Path(t.user_attrs["job_dirs"][0])
        assert run_dir.parent == sweep and run_dir.name == str(t.number)
        metrics = json.loads((run_dir / "metrics.json").read_text())
        # the dir holds this trial's run, not another worker's
        assert metrics["optimizer_args"]["lr"] == pytest.approx(t.params["optimizer.lr"])
    return finished


def assert_retried(study: optuna.Study, dead) -> None:
    """The dead worker's trial failed, and a copy with its parameters finished."""
    failed = study.trials[dead.number]
    assert failed.state == TrialState.FAIL
    retries = [t for t in study.trials if t.system_attrs.get("failed_trial") == dead.number]
    assert len(retries) == 1 and retries[0].state in FINISHED
    # the failed trial as stored now: `dead` may have been read before its parameters were set
    assert failed.params and retries[0].params == failed.params


# ------------------------------------------------------------------------------ PostgreSQL
@pytest.mark.slow
def test_three_workers_fill_one_postgresql_study(tmp_path, pg_url):
    workers = [start_worker(tmp_path, pg_url, "fill", "hydra.sweeper.n_trials=60",
                            "hydra.sweeper.n_jobs=2", *HEARTBEAT) for _ in range(3)]
    wait_all(workers)
    study = load(pg_url, "fill")
    finished = assert_study_filled(study, 60, tmp_path / "sweep")
    by_worker = Counter(t.user_attrs["worker"]["pid"] for t in finished)
    assert set(by_worker) <= {w.pid for w in workers} and len(by_worker) >= 2


@pytest.mark.slow
def test_killed_worker_trial_fails_after_grace_period_and_is_retried(tmp_path, pg_url):
    victim = start_worker(tmp_path, pg_url, "kill", "hydra.sweeper.n_trials=6", *ENDLESS,
                          *HEARTBEAT)
    dead = running_trial_of(victim, pg_url, "kill")
    kill(victim)
    time.sleep(3)  # heartbeat 1 s + grace period 2 s: stale when the others first look
    others = [start_worker(tmp_path, pg_url, "kill", "hydra.sweeper.n_trials=6", *HEARTBEAT)
              for _ in range(2)]
    wait_all(others)
    study = load(pg_url, "kill")
    assert_study_filled(study, 6, tmp_path / "sweep")
    assert_retried(study, dead)


@pytest.mark.slow
def test_workers_on_mysql(tmp_path, mysql_url):
    workers = [start_worker(tmp_path, mysql_url, "my", "hydra.sweeper.n_trials=4", *HEARTBEAT)
               for _ in range(2)]
    wait_all(workers)
    assert_study_filled(load(mysql_url, "my"), 4, tmp_path / "sweep")


# ------------------------------------------------------------------------------ journal file
@pytest.mark.slow
def test_journal_file_workers_with_one_killed(tmp_path):
    journal = str(tmp_path / "study.log")
    victim = start_worker(tmp_path, journal, "j", "hydra.sweeper.n_trials=10", *ENDLESS)
    dead = running_trial_of(victim, journal, "j")
    others = [start_worker(tmp_path, journal, "j", "hydra.sweeper.n_trials=10")
              for _ in range(2)]
    kill(victim)  # no heartbeats on a journal file: the survivors find the worker's pid gone
    wait_all(others)
    study = load(journal, "j")
    assert_study_filled(study, 10, tmp_path / "sweep")
    assert_retried(study, dead)
    assert "left running by a process that stopped" in study.trials[dead.number].user_attrs[
        "fail_reason"]


# ------------------------------------------------------------------------------ launchers
def assert_run_dirs(study: optuna.Study) -> None:
    for t in study.get_trials(states=FINISHED):
        run_dir = Path(t.user_attrs["job_dirs"][0])
        for name in ("metrics.json", "history.csv", "model.npz", ".hydra/config.yaml"):
            assert (run_dir / name).exists(), run_dir / name
        assert t.intermediate_values  # the job reported from its own process


@pytest.mark.slow
def test_joblib_launcher_runs_jobs_in_processes_that_report_and_prune(tmp_path):
    journal = str(tmp_path / "study.log")
    proc = start_worker(tmp_path, journal, "jl", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                        "hydra.sweeper.n_trials=4", "hydra.sweeper.n_jobs=2",
                        "hydra/sweeper/pruner=median", "hydra.sweeper.pruner.n_startup_trials=1",
                        "hydra.sweeper.report_every=1", "hydra.sweeper.sampler.seed=0",
                        "train.epochs=20")
    wait_all([proc])
    study = load(journal, "jl")
    assert len(study.get_trials(states=FINISHED)) == 4
    assert_run_dirs(study)
    for t in study.get_trials(states=(TrialState.PRUNED,)):
        metrics = json.loads((Path(t.user_attrs["job_dirs"][0]) / "metrics.json").read_text())
        assert metrics["status"] == "pruned" and metrics["epochs_run"] < 20


@pytest.mark.slow
def test_submitit_local_launcher_writes_run_dirs(tmp_path):
    journal = str(tmp_path / "study.log")
    proc = start_worker(tmp_path, journal, "sl", "hydra/launcher=submitit_local",
                        "hydra.sweeper.n_trials=2", "hydra.sweeper.n_jobs=2",
                        "hydra.launcher.timeout_min=5", "hydra.sweeper.report_every=1")
    wait_all([proc])
    study = load(journal, "sl")
    assert len(study.get_trials(states=FINISHED)) == 2
    assert_run_dirs(study)


# ------------------------------------------------------------------------------ pieces
def test_worker_liveness_by_pid_and_host():
    from hydra_plugins.rnnexp_optuna_sweeper._workers import this_worker, worker_is_gone

    me = this_worker()
    assert worker_is_gone(me) is False
    assert worker_is_gone({**me, "host": me["host"] + "-elsewhere"}) is None


def test_a_journal_reader_sees_what_another_process_appends(tmp_path):
    """The journal skips reading a file that still ends where its last read ended; a record
    another worker appends makes it read again, a record of its own too."""
    from rnnexp.tuning.storage import open_storage

    path = str(tmp_path / "s.log")
    mine, theirs = (optuna.create_study(study_name="s", storage=open_storage(path),
                                        load_if_exists=True) for _ in range(2))
    assert mine.trials == theirs.trials == []
    trial = theirs.ask()
    theirs.tell(trial, 1.5)
    assert [(t.number, t.value) for t in mine.trials] == [(0, 1.5)]
    assert mine.trials[0].value == 1.5  # nothing new: read from memory, the same trial
    mine.tell(mine.ask(), 2.5)
    assert [t.value for t in theirs.trials] == [1.5, 2.5]
    assert [t.value for t in mine.trials] == [1.5, 2.5]


def test_a_worker_is_alive_in_its_own_process_without_proc(monkeypatch):
    from hydra_plugins.rnnexp_optuna_sweeper import _workers

    me = _workers.this_worker()
    assert me == _workers.this_worker() and me is not _workers.this_worker()  # a copy each time
    monkeypatch.setattr(_workers, "_process_start", lambda pid: pytest.fail("read /proc"))
    assert _workers.worker_is_gone(me) is False


def test_an_interrupt_waits_for_the_asked_trials_to_be_held():
    """Ctrl-C inside study.ask() would leave a RUNNING trial no one holds: it is raised once the
    block that asks and records the trials ends, and not at all when none came."""
    from rnnexp.runner import interrupts_held

    study = optuna.create_study()
    held = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts_held():
            trial = study.ask()
            signal.raise_signal(signal.SIGINT)  # lands while the trial is not held yet
            held.append(trial)
    assert [t.number for t in held] == [0]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with interrupts_held():
        held.append(study.ask())
    assert len(held) == 2


@pytest.mark.slow
def test_a_reaped_workers_pid_is_gone():
    from hydra_plugins.rnnexp_optuna_sweeper._workers import this_worker, worker_is_gone

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # exited and reaped: its pid is gone
    assert worker_is_gone({**this_worker(), "pid": child.pid}) is True


def test_a_sweep_dir_serves_one_study(tmp_path):
    from hydra_plugins.rnnexp_optuna_sweeper._core import SweeperConfigError, claim_sweep_dir

    claim_sweep_dir(tmp_path, "a")
    claim_sweep_dir(tmp_path, "a")  # another worker of the same study
    with pytest.raises(SweeperConfigError, match="holds the job dirs of study 'a'"):
        claim_sweep_dir(tmp_path, "b")


def test_trials_past_the_total_are_the_highest_numbered(tmp_path):
    from hydra_plugins.rnnexp_optuna_sweeper._workers import beyond_total

    study = optuna.create_study()
    done = [study.ask() for _ in range(3)]
    study.tell(done[0], 1.0)
    late = [study.ask() for _ in range(2)]  # two workers asked at once for the last free slot
    assert [t.number for t in beyond_total(study, done + late, 4)] == [4]


# bad heartbeat_interval, grace_period and max_retry: tests/reliability/test_bad_inputs.py
# (STUDY_CASES, in process; heartbeat_interval=0 also through rnnexp-train)


@pytest.mark.slow
def test_postgresql_workers_train_their_batches_stacked(tmp_path, pg_url):
    """Each worker asks n_jobs trials at a time and hands them to the batched launcher, which
    trains them as one stacked computation; together the workers still stop at n_trials."""
    workers = [start_worker(tmp_path, pg_url, "stacked", "hydra/launcher=batched",
                            "hydra.sweeper.n_trials=40", "hydra.sweeper.n_jobs=8", *HEARTBEAT)
               for _ in range(2)]
    wait_all(workers)
    study = load(pg_url, "stacked")
    assert_study_filled(study, 40, tmp_path / "sweep")
    logs = "".join(w.log_path.read_text() for w in workers)
    batches = [int(n) for n in re.findall(r"Batched launcher: (\d+) jobs in 1 batches;", logs)]
    assert batches and max(batches) > 1 and sum(batches) >= 40
