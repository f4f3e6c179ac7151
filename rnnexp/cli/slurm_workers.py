"""rnnexp-slurm-workers: fill one Optuna study with a SLURM job array of workers.

    rnnexp-slurm-workers 8 --partition cpu --time 120 -- \\
        hydra.sweeper.storage=postgresql://user@dbhost:5432/rnnexp hydra.sweeper.study_name=lr \\
        hydra.sweeper.n_trials=5000 'optimizer.lr=tag(log, interval(0.001, 1))' train.epochs=100

Each array task runs `rnnexp-train -m hydra/sweeper=optuna hydra/launcher=batched <overrides>`:
one worker of the shared study, training each batch of trials as one stacked computation. So a
cluster pays one job start-up (Python, torch, Hydra) per worker, not per run. The workers share
the study through its storage (PostgreSQL across nodes; a journal file only on one node) and one
sweep dir, where each trial's job dir is named by its trial number. A task that dies (cancelled,
killed, out of time) leaves its trial to the others: with RDB storage its heartbeat stops, the
trial is failed and asked again (hydra.sweeper.heartbeat_interval, grace_period, max_retry).

The sbatch script is written beside the logs (<logs>/workers-<study>.sbatch), so the same array
can be submitted again by hand; --dry-run only prints it.
"""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

from rnnexp.cli import OneLineParser, guarded, positive_int

PROG = "rnnexp-slurm-workers"


class SlurmError(ValueError):
    """A worker array that cannot be submitted (one line)."""


def _key(line: str) -> str:
    """The key an override line sets (`key=...`, `+key=...` or `++key=...`)."""
    return line.partition("=")[0].lstrip("+")


def _value(overrides: list[str], key: str) -> Optional[str]:
    """The last value the overrides give `key`."""
    found = None
    for line in overrides:
        if "=" in line and _key(line) == key:
            found = line.partition("=")[2]
    return found


def worker_overrides(overrides: list[str], cwd: Path) -> tuple[list[str], str, Path]:
    """The overrides every worker runs with, its study's name and the shared sweep dir."""
    storage = _value(overrides, "hydra.sweeper.storage")
    study = _value(overrides, "hydra.sweeper.study_name")
    if not study:
        raise SlurmError("give the study a name (hydra.sweeper.study_name=...): every worker must "
                         "join the same study")
    if storage in (None, "", "memory", "null"):
        raise SlurmError("give the workers a storage they share (hydra.sweeper.storage="
                         "postgresql://USER@HOST:5432/DB across nodes, or a journal file path on "
                         "one node): a study in memory is one per worker")
    out = list(overrides)
    for group, default in (("hydra/sweeper", "optuna"), ("hydra/launcher", "batched")):
        if _value(out, group) is None:
            out.insert(0, f"{group}={default}")
    if _value(out, "hydra/sweeper") != "optuna":
        raise SlurmError("the workers fill an Optuna study: hydra/sweeper must be optuna")
    sweep_dir = _value(out, "hydra.sweep.dir")
    if sweep_dir is None:
        sweep_dir = str((cwd / "multirun" / study).absolute())
        out.append(f"hydra.sweep.dir={sweep_dir}")
    elif not os.path.isabs(sweep_dir):
        sweep_dir = str((cwd / sweep_dir).absolute())
        out = [f"hydra.sweep.dir={sweep_dir}" if _key(line) == "hydra.sweep.dir" else line
               for line in out]
    return out, study, Path(sweep_dir)


def sbatch_script(n: int, overrides: list[str], *, job_name: str, logs: Path, cwd: Path,
                  partition: Optional[str], time_limit: Optional[str], cpus: int,
                  mem: Optional[str]) -> str:
    train = Path(sys.executable).parent / "rnnexp-train"
    lines = ["#!/bin/bash", f"#SBATCH --job-name={job_name}", f"#SBATCH --array=0-{n - 1}",
             f"#SBATCH --cpus-per-task={cpus}", f"#SBATCH --output={logs}/worker-%A_%a.log",
             f"#SBATCH --chdir={cwd}"]
    if partition:
        lines.append(f"#SBATCH --partition={partition}")
    if time_limit:
        lines.append(f"#SBATCH --time={time_limit}")
    if mem:
        lines.append(f"#SBATCH --mem={mem}")
    lines += [
        "# one worker of the study per array task; its batches train stacked (hydra/launcher=batched)",
        "export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}",
        "exec " + " ".join(shlex.quote(a) for a in [str(train), "-m", *overrides]),
    ]
    return "\n".join(lines) + "\n"


def submit(script: Path, wait: bool) -> tuple[str, int]:
    """sbatch the script: (job id, exit status; with wait, the array's)."""
    if shutil.which("sbatch") is None:
        raise SlurmError("sbatch is not on PATH: run this on a SLURM login node")
    cmd = ["sbatch", "--parsable", *(["--wait"] if wait else []), str(script)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    job = proc.stdout.readline().strip().split(";")[0]  # --parsable: "<id>[;cluster]"
    if not job:
        err = proc.stderr.read().strip().splitlines()
        proc.wait()
        raise SlurmError(f"sbatch refused the array: {err[-1] if err else 'no job id'}")
    if wait:
        print(f"{PROG}: submitted job array {job}; waiting for it to end", flush=True)
    rc = proc.wait()
    return job, rc


def main(argv: Optional[list[str]] = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" in argv:
        cut = argv.index("--")
        own, overrides = argv[:cut], argv[cut + 1:]
    else:
        own, overrides = argv, []
    parser = OneLineParser(
        prog=PROG, usage=f"{PROG} N [options] -- <rnnexp-train -m overrides>",
        description="Fill one Optuna study with a SLURM job array of N rnnexp-train workers.")
    parser.add_argument("n", type=positive_int, metavar="N", help="workers (array tasks)")
    parser.add_argument("--partition", help="SLURM partition (default: the cluster's)")
    parser.add_argument("--time", dest="time_limit",
                        help="time limit of each worker, as sbatch takes it (minutes, or "
                             "HH:MM:SS); a worker out of time leaves its trial to the others")
    parser.add_argument("--cpus-per-task", type=positive_int, default=1,
                        help="CPUs of each worker (its torch threads); default: %(default)s")
    parser.add_argument("--mem", help="memory of each worker, as sbatch takes it (e.g. 2G)")
    parser.add_argument("--logs", type=Path,
                        help="folder of the workers' logs and the sbatch script (default: "
                             "<sweep dir>/slurm)")
    parser.add_argument("--wait", action="store_true",
                        help="return when every worker has ended (exit status 1 if one failed)")
    parser.add_argument("--dry-run", action="store_true", help="print the sbatch script only")
    args = parser.parse_args(own)
    if not overrides:
        parser.error("give the study's overrides after --")

    def body() -> tuple[str, int, Path, Path]:
        cwd = Path.cwd()
        lines, study, sweep_dir = worker_overrides(overrides, cwd)
        logs = (args.logs or sweep_dir / "slurm").absolute()
        script = sbatch_script(args.n, lines, job_name=f"rnnexp-{study}", logs=logs, cwd=cwd,
                               partition=args.partition, time_limit=args.time_limit,
                               cpus=args.cpus_per_task, mem=args.mem)
        if args.dry_run:
            print(script, end="")
            return "", 0, logs, sweep_dir
        logs.mkdir(parents=True, exist_ok=True)
        path = logs / f"workers-{study}-{time.strftime('%Y%m%d-%H%M%S')}.sbatch"
        path.write_text(script, encoding="utf-8")
        job, rc = submit(path, args.wait)
        return job, rc, logs, sweep_dir

    job, rc, logs, sweep_dir = guarded(PROG, body)
    if args.dry_run:
        return
    if args.wait:
        how = "every worker exited 0" if rc == 0 else "a worker failed: see its log"
        print(f"{PROG}: job array {job} ended ({how}); logs in {logs}, job dirs in {sweep_dir}")
        sys.exit(0 if rc == 0 else 1)
    print(f"{PROG}: submitted job array {job} ({args.n} workers); watch it with squeue -j {job}; "
          f"logs in {logs}, job dirs in {sweep_dir}")


if __name__ == "__main__":
    main()


__all__ = ["SlurmError", "main", "sbatch_script", "worker_overrides"]
