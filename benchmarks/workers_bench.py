"""Throughput of one PostgreSQL study filled by 1, 2, ... worker processes of rnnexp-train.

Each worker count gets a fresh database and the same study (same trials, same workload: the Q2(ii)
setting of the report, a 5-unit nn.RNN on "edgement", RMSprop, 100 epochs, lr and alpha searched by
the random sampler). The clock runs from the start of the first worker to the end of the last, so
process start-up (imports, schema creation) is part of the figure, as it is for a user.

    python benchmarks/workers_bench.py --trials 40 --workers 1 2
    python benchmarks/workers_bench.py --slurm --trials 40 --workers 1 2   # on SLURM (.ci/slurm)

With --slurm the workers are the tasks of one SLURM job array (rnnexp-slurm-workers), and the
same study runs once more through hydra/launcher=submitit_slurm, a SLURM job per run; runs/s of
each, side by side.

Each worker runs with OMP_NUM_THREADS=1 (--threads): torch's default of one thread per core makes
processes that share the cores wait on each other's spinning threads.

Prints trials/s per worker count and the ratio to one worker. PostgreSQL at 127.0.0.1:5432 with
trust auth for root (pip install -e '.[dist]' for the drivers).
"""
from __future__ import annotations

import argparse
import os
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import psycopg2

SERVER = dict(host="127.0.0.1", port=5432, user="root")
PARTITION = "cpu"
WORKLOAD = ["model=torch_rnn", "model.hidden_size=5", "word=edgement", "optimizer=rmsprop",
            "train.epochs=100", "hydra/sweeper/sampler=random",
            "optimizer.lr=tag(log, interval(0.001, 1))", "optimizer.alpha=interval(0.3, 0.999)",
            "hydra.sweeper.max_failure_rate=1"]  # a diverging setting fails its trial only


def admin():
    conn = psycopg2.connect(dbname="postgres", **SERVER)
    conn.autocommit = True  # CREATE / DROP DATABASE cannot run inside a transaction
    return conn


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def worker_commands(n_workers: int, url: str, n_trials: int, n_jobs: int,
                    sweep_dir: Path) -> list[list[str]]:
    """n_workers local processes of rnnexp-train on one study."""
    script = Path(sys.executable).parent / "rnnexp-train"
    cmd = [str(script), "-m", "hydra/sweeper=optuna", f"hydra.sweeper.storage={url}",
           "hydra.sweeper.study_name=bench", f"hydra.sweeper.n_trials={n_trials}",
           f"hydra.sweeper.n_jobs={n_jobs}", f"hydra.sweep.dir={sweep_dir}", *WORKLOAD]
    return [cmd] * n_workers


def slurm_array_commands(n_workers: int, url: str, n_trials: int, n_jobs: int,
                         sweep_dir: Path) -> list[list[str]]:
    """One SLURM job array of n_workers tasks, each a worker (rnnexp-slurm-workers --wait)."""
    script = Path(sys.executable).parent / "rnnexp-slurm-workers"
    return [[str(script), str(n_workers), "--partition", PARTITION, "--wait", "--",
             f"hydra.sweeper.storage={url}", "hydra.sweeper.study_name=bench",
             f"hydra.sweeper.n_trials={n_trials}", f"hydra.sweeper.n_jobs={n_jobs}",
             f"hydra.sweep.dir={sweep_dir}", *WORKLOAD]]


def submitit_commands(n_workers: int, url: str, n_trials: int, n_jobs: int,
                      sweep_dir: Path) -> list[list[str]]:
    """One rnnexp-train sweeping through hydra/launcher=submitit_slurm: a SLURM job per run."""
    script = Path(sys.executable).parent / "rnnexp-train"
    return [[str(script), "-m", "hydra/sweeper=optuna", "hydra/launcher=submitit_slurm",
             f"hydra.launcher.partition={PARTITION}", f"hydra.sweeper.storage={url}",
             "hydra.sweeper.study_name=bench", f"hydra.sweeper.n_trials={n_trials}",
             f"hydra.sweeper.n_jobs={n_jobs}", f"hydra.sweep.dir={sweep_dir}", *WORKLOAD]]


def run_study(commands, n_workers: int, n_trials: int, n_jobs: int, threads: int,
              workdir: Path) -> tuple[float, float]:
    """Wall seconds and CPU seconds (this machine's child processes; SLURM's jobs are the
    daemons' children, not counted) to fill a fresh study of n_trials trials."""
    db = f"rnnexp_bench_{secrets.token_hex(4)}"
    url = f"postgresql://{SERVER['user']}@{SERVER['host']}:{SERVER['port']}/{db}"
    conn = admin()
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    try:
        start, cpu_start = time.perf_counter(), children_cpu_s()
        procs = [subprocess.Popen(cmd, cwd=workdir, env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True)
                 for cmd in commands(n_workers, url, n_trials, n_jobs, workdir / db)]
        for p in procs:
            _, err = p.communicate()
            if p.returncode != 0:
                raise RuntimeError(f"a worker failed: {err.strip().splitlines()[-1:]}")
        seconds, cpu = time.perf_counter() - start, children_cpu_s() - cpu_start
        study = optuna.load_study(study_name="bench", storage=url)
        finished = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,
                                            optuna.trial.TrialState.PRUNED))
        assert len(finished) == n_trials, f"{len(finished)} finished trials, not {n_trials}"
        return seconds, cpu
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=40, help="study size (finished trials)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--n-jobs", type=int, default=2, help="hydra.sweeper.n_jobs per worker")
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of each worker")
    parser.add_argument("--slurm", action="store_true",
                        help="on SLURM (partition cpu, bash .ci/slurm): a worker array of 1, 2 "
                             "... tasks, beside the same study through submitit_slurm, a job "
                             "per run")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print(f"{os.cpu_count()} cores, {args.trials} trials (one run each), n_jobs {args.n_jobs}, "
          f"OMP_NUM_THREADS={args.threads}, workload: {' '.join(WORKLOAD)}")
    rows = ([("SLURM worker array", slurm_array_commands, n) for n in args.workers]
            + [("submitit_slurm, a job per run", submitit_commands, 1)] if args.slurm
            else [("local worker processes", worker_commands, n) for n in args.workers])
    base = None
    with tempfile.TemporaryDirectory() as tmp:
        for label, commands, n in rows:
            seconds, cpu = run_study(commands, n, args.trials, args.n_jobs, args.threads,
                                     Path(tmp))
            rate = args.trials / seconds
            base = base or rate
            who = f"{n} worker(s)" if commands is not submitit_commands else "1 sweeper"
            print(f"{label}, {who}: {seconds:6.1f} s, {rate:5.2f} runs/s, x{rate / base:.2f}"
                  + ("" if args.slurm else f"; workers' CPU {cpu:.1f} s"))
    print(f"load average after: {os.getloadavg()[0]:.1f} (other processes share these cores)")


if __name__ == "__main__":
    main()
