"""On a real SLURM (a one-node cluster with accounting through slurmdbd, started by .ci/slurm):
Hydra's way (hydra/launcher=submitit_slurm: a grid, an Optuna study, a cancelled job) and the
fast way (rnnexp-slurm-workers: a job array of workers filling one PostgreSQL study, one task
killed, one out of time). Every study must end with exactly n_trials finished trials.

Without SLURM these tests skip, except where RNNEXP_REQUIRE_SLURM=1 (.ci/run sets it): there a
missing cluster fails them."""
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from test_scaleout import assert_retried, assert_study_filled, load, pg_url  # noqa: F401

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
PARTITION = "cpu"
HEARTBEAT = ["hydra.sweeper.heartbeat_interval=1", "hydra.sweeper.grace_period=3"]


@pytest.fixture(scope="module", autouse=True)
def slurm():
    """A SLURM that answers: sinfo shows the partition's node up, sacct answers."""
    ok = shutil.which("sbatch") is not None and subprocess.run(
        ["sinfo", "-h", "-p", PARTITION, "-o", "%T"], capture_output=True, text=True,
        timeout=30).stdout.strip() in ("idle", "mixed", "allocated")
    if not ok:
        message = f"no SLURM with a partition {PARTITION!r} answers here (bash .ci/slurm starts one)"
        if os.environ.get("RNNEXP_REQUIRE_SLURM") == "1":
            pytest.fail(message)
        pytest.skip(message)


def env() -> dict:
    return {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}


def train(tmp_path: Path, *overrides: str, wait: bool = True):
    cmd = [str(BIN / "rnnexp-train"), "-m", "hydra/launcher=submitit_slurm",
           f"hydra.launcher.partition={PARTITION}", f"hydra.sweep.dir={tmp_path / 'sweep'}",
           "train.checkpoint=false", *overrides]
    log = open(tmp_path / "train.log", "w")
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env(), stdout=log, stderr=subprocess.STDOUT)
    log.close()
    if wait:
        assert proc.wait(timeout=600) == 0, (tmp_path / "train.log").read_text()[-3000:]
    return proc


def workers(tmp_path: Path, n: int, *overrides: str, options: tuple = ()) -> subprocess.Popen:
    """rnnexp-slurm-workers N --wait -- <overrides>, in the background."""
    cmd = [str(BIN / "rnnexp-slurm-workers"), str(n), "--partition", PARTITION, "--wait",
           *options, "--", f"hydra.sweep.dir={tmp_path / 'sweep'}", "train.checkpoint=false",
           *overrides]
    log = open(tmp_path / f"workers-{time.monotonic_ns()}.log", "w")
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env(), stdout=log, stderr=subprocess.STDOUT,
                            text=True)
    proc.log_path = Path(log.name)
    log.close()
    return proc


def job_of(proc: subprocess.Popen, timeout: float = 60) -> str:
    """The array's job id, from the first line rnnexp-slurm-workers prints."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = proc.log_path.read_text()
        if "submitted job array " in text:
            return text.split("submitted job array ")[1].split(";")[0].split()[0]
        assert proc.poll() is None, text
        time.sleep(0.2)
    raise AssertionError("no job array submitted")


def study_args(storage: str, name: str, n_trials: int, epochs: int, n_jobs: int = 1) -> list:
    return [f"hydra.sweeper.storage={storage}", f"hydra.sweeper.study_name={name}",
            f"hydra.sweeper.n_trials={n_trials}", f"hydra.sweeper.n_jobs={n_jobs}",
            "hydra.sweeper.sampler.seed=0", "hydra.sweeper.max_failure_rate=1",
            "optimizer.lr=tag(log, interval(0.01, 1))", f"train.epochs={epochs}"]


def running_trial_in_task(storage: str, name: str, pid_of_task, timeout: float = 120):
    """A RUNNING trial (with its parameters) and the array task that runs it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            for t in load(storage, name).get_trials(states=(TrialState.RUNNING,)):
                task = pid_of_task(t.user_attrs.get("worker", {}).get("pid"))
                if t.params and task is not None:
                    return t, task
        except KeyError:
            pass  # no study yet
        time.sleep(0.3)
    raise AssertionError(f"no trial ran within {timeout} s")


def task_of_pid(job: str):
    """pid -> the array task (job_task) whose worker process has that pid, via /proc: a task's
    worker carries SLURM_ARRAY_TASK_ID in its environment."""
    def find(pid):
        if pid is None:
            return None
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            return None
        values = dict(e.split(b"=", 1) for e in environ if b"=" in e)
        if values.get(b"SLURM_ARRAY_JOB_ID", b"").decode() != job:
            return None
        return f"{job}_{values[b'SLURM_ARRAY_TASK_ID'].decode()}"
    return find


def sacct_states(job: str, timeout: float = 60) -> dict:
    """The job's tasks and their final states, as accounting records them (a few seconds after
    the tasks end)."""
    deadline = time.monotonic() + timeout
    while True:
        out = subprocess.run(["sacct", "-n", "-X", "-P", "-j", job, "--format=JobID,State"],
                             capture_output=True, text=True, timeout=30).stdout
        states = dict(line.split("|")[:2] for line in out.splitlines() if "|" in line)
        pending = {"PENDING", "RUNNING", "COMPLETING", "REQUEUED", "RESIZING", "SUSPENDED"}
        if (states and not pending & set(states.values())) or time.monotonic() > deadline:
            return states
        time.sleep(1)


# ---------------------------------------------------------------- Hydra's way: submitit_slurm

def test_a_grid_runs_through_submitit_slurm(tmp_path):
    train(tmp_path, "optimizer.lr=0.1,0.3", "model.hidden_size=3,5", "train.epochs=5")
    dirs = sorted((tmp_path / "sweep").glob("[0-9]*"))
    assert len(dirs) == 4
    for d in dirs:
        assert json.loads((d / "metrics.json").read_text())["epochs_run"] == 5
    jobs = {p.name.split("_")[0] for p in (tmp_path / "sweep" / ".submitit").glob("[0-9]*_*")}
    assert jobs and all(set(sacct_states(j).values()) == {"COMPLETED"} for j in jobs)
    assert "Bypassing sacct error" not in (tmp_path / "train.log").read_text()


def test_a_study_runs_through_submitit_slurm(tmp_path, pg_url):
    train(tmp_path, "hydra/sweeper=optuna", *study_args(pg_url, "hydra-way", 4, 5, n_jobs=2))
    assert_study_filled(load(pg_url, "hydra-way"), 4, tmp_path / "sweep")


def cancel_one_submitit_job(tmp_path: Path, pg_url: str, name: str) -> optuna.Study:
    """A 3-trial study through submitit_slurm, batches of 2; once both jobs of the first batch
    run, scancel -s KILL one of them. The sweep must end on its own."""
    def jobs(*state: str) -> list[str]:
        return subprocess.run(["squeue", "-h", *state, "-o", "%i"], capture_output=True,
                              text=True).stdout.split()

    earlier = {j.split("_")[0] for j in jobs()}  # another test's jobs are never the ones killed
    proc = train(tmp_path, "hydra/sweeper=optuna", *study_args(pg_url, name, 3, 1500, n_jobs=2),
                 wait=False)
    deadline = time.monotonic() + 120
    running = []
    while time.monotonic() < deadline:  # both tasks of the first batch running
        running = [j for j in jobs("-t", "R") if j.split("_")[0] not in earlier]
        if len(running) >= 2:
            break
        time.sleep(0.3)
    assert running, "no job of this study ran within 120 s"
    time.sleep(1)
    subprocess.run(["scancel", "-s", "KILL", sorted(running)[0]], check=True)
    assert proc.wait(timeout=600) == 0, (tmp_path / "train.log").read_text()[-3000:]
    study = load(pg_url, name)
    assert_study_filled(study, 3, tmp_path / "sweep")
    (lost,) = study.get_trials(states=(TrialState.FAIL,))
    assert "lost" in lost.user_attrs["fail_reason"]
    assert_retried(study, lost)
    return study


def test_a_cancelled_submitit_job_fails_its_trial_which_is_asked_again(tmp_path, pg_url):
    """scancel -s KILL of one running array task of a batch: its trial fails (the job is lost,
    submitit reads CANCELLED from sacct), the other trial of the batch completes, the lost one
    is asked again with its parameters, and the study ends with exactly n_trials."""
    study = cancel_one_submitit_job(tmp_path, pg_url, "hydra-cancel")
    (lost,) = study.get_trials(states=(TrialState.FAIL,))
    assert "CANCELLED" in lost.user_attrs["fail_reason"]


CI_SLURM = Path(__file__).parents[1] / ".ci" / "slurm"


def test_without_accounting_a_cancelled_job_is_not_waited_for_forever(tmp_path, pg_url):
    """The same on the cluster without accounting (sacct refuses, submitit sees no state): the
    job squeue no longer lists, with no result, counts as lost; submitit's warning about sacct
    is said once, not at every poll."""
    subprocess.run(["bash", str(CI_SLURM), "--no-accounting"], check=True, timeout=300,
                   capture_output=True)
    try:
        cancel_one_submitit_job(tmp_path, pg_url, "hydra-cancel-no-sacct")
        log = (tmp_path / "train.log").read_text()
        assert log.count("Bypassing sacct error") == 1 and "rnnexp watches the jobs" in log
    finally:
        subprocess.run(["bash", str(CI_SLURM)], check=True, timeout=300, capture_output=True)


# ---------------------------------------------------------------- the fast way: a worker array

def test_a_worker_array_fills_one_study_training_batches_stacked(tmp_path, pg_url):
    proc = workers(tmp_path, 2, *study_args(pg_url, "array", 10, 5, n_jobs=2))
    assert proc.wait(timeout=600) == 0, proc.log_path.read_text()
    study = load(pg_url, "array")
    finished = assert_study_filled(study, 10, tmp_path / "sweep")
    assert len({t.user_attrs["worker"]["pid"] for t in finished}) == 2  # both tasks worked
    logs = sorted((tmp_path / "sweep" / "slurm").glob("worker-*.log"))
    assert len(logs) == 2 and all("Optuna sweeper:" in p.read_text() for p in logs)
    script = next((tmp_path / "sweep" / "slurm").glob("workers-array-*.sbatch")).read_text()
    assert "#SBATCH --array=0-1" in script and "hydra/launcher=batched" in script


def test_a_killed_array_task_leaves_its_trial_to_the_other_worker(tmp_path, pg_url):
    """scancel -s KILL of one array task while its trial runs: its heartbeat stops, the other
    worker fails the trial and runs it again with its parameters, and the study ends with
    exactly n_trials, in bounded time (the array ends: --wait returns)."""
    name = "array-kill"
    proc = workers(tmp_path, 2, *study_args(pg_url, name, 6, 3000), *HEARTBEAT)
    job = job_of(proc)
    dead, task = running_trial_in_task(pg_url, name, task_of_pid(job))
    subprocess.run(["scancel", "-s", "KILL", task], check=True)
    rc = proc.wait(timeout=600)
    assert rc == 1  # one worker did not exit 0: it was killed
    study = load(pg_url, name)
    assert_study_filled(study, 6, tmp_path / "sweep")
    assert_retried(study, dead)
    states = sacct_states(job)
    assert states[task].startswith("CANCELLED") and "COMPLETED" in states.values()


def test_a_worker_out_of_time_leaves_its_trial_to_the_next(tmp_path, pg_url):
    """A worker array with a one-minute time limit whose trials take longer than what is left:
    SLURM ends it mid-trial (TIMEOUT), and a second array, started after it, fails that trial,
    runs it again and finishes the study with exactly n_trials."""
    name = "array-timeout"
    args = [*study_args(pg_url, name, 14, 12000), *HEARTBEAT]  # about 2 minutes of trials
    first = workers(tmp_path, 1, *args, options=("--time", "1"))
    job = job_of(first)
    assert first.wait(timeout=300) == 1, first.log_path.read_text()
    assert sacct_states(job)[f"{job}_0"] == "TIMEOUT"
    study = load(pg_url, name)
    # left behind by the timed-out task: the trial training, and the next one, asked while it
    # trained (hydra.sweeper.overlap)
    dead = study.get_trials(states=(TrialState.RUNNING,))
    assert 1 <= len(dead) <= 2, [t.number for t in dead]
    second = workers(tmp_path, 1, *args)
    assert second.wait(timeout=900) == 0, second.log_path.read_text()
    study = load(pg_url, name)
    assert_study_filled(study, 14, tmp_path / "sweep")
    for trial in dead:
        assert_retried(study, trial)


def test_bad_worker_arrays_are_refused_in_one_line(tmp_path):
    for overrides, message in (
            (["hydra.sweeper.storage=postgresql://h/db"], "give the study a name"),
            (["hydra.sweeper.study_name=s"], "give the workers a storage they share")):
        proc = subprocess.run([str(BIN / "rnnexp-slurm-workers"), "2", "--", *overrides],
                              cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and message in proc.stderr


__all__ = ["optuna"]
