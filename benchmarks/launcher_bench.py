"""Whole-command throughput and memory of rnnexp-train sweeps: the basic launcher against
hydra/launcher=batched.

Every command is a real `rnnexp-train -m` process, so start-up, the sweeper's checks, composing,
training and every file each job writes are all in the figure. The workload is the report's Q2(ii)
setting: torch_rnn, hidden 5, "edgement", 100 epochs, RMSprop, train.checkpoint=false (--checkpoint:
model.npz too), a grid over learning rates x seeds: as many seeds as learning rates below 16384
trials (48 = 6 x 8, 4096 = 64 x 64), 256 learning rates from there (16384 = 256 x 64,
65536 = 256 x 256).

    .venv/bin/python benchmarks/launcher_bench.py        # basic 48; batched 4096, 16384, 65536
    .venv/bin/python benchmarks/launcher_bench.py --basic 16 --batched 256 4096 --profile

For each command it prints seconds, trials per second, the ratio to the basic launcher's trials
per second, milliseconds per trial (flat when time is linear in the trials) and the peak RSS of
the command (its process's ru_maxrss, read with os.wait4), then the batched launcher's own split
of its wall time per job (bookkeeping = composing the job's config and writing its .hydra files;
training = train_group; run files = model.npz, history.csv, metrics.json), read from the line the
launcher logs at the end. Then the bookkeeping alone, measured in-process in CPU time (a figure
that other load on the machine disturbs less). --profile also runs one batched grid under
cProfile and prints the functions with the most cumulative time.

The sweeps are written under one temporary directory (--workdir: under that directory), removed
at the end: removing a large sweep while the next command writes slows that command down.
"""
from __future__ import annotations

import argparse
import math
import os
import pstats
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

BIN = Path(sys.executable).parent
SETTING = ["model=torch_rnn", "model.hidden_size=5", "word=edgement", "optimizer=rmsprop",
           "train.epochs=100"]


def grid(n_trials: int) -> list[str]:
    """lr x seed overrides for n_trials jobs: a square grid (or as near as divides n_trials) below
    16384 trials, 256 learning rates from there."""
    n_lr = 256 if n_trials >= 256 * 64 else max(1, math.isqrt(n_trials))
    while n_trials % n_lr:
        n_lr -= 1
    lrs = ",".join(f"{0.005 * (k + 1):g}" for k in range(n_lr))
    return [f"optimizer.lr={lrs}", f"seed=range(0,{n_trials // n_lr})"]


@dataclass
class Run:
    launcher: str
    trials: int
    seconds: float
    max_rss_kb: int  # the command's peak resident set (ru_maxrss, KiB on Linux)
    stdout: str

    @property
    def rate(self) -> float:
        return self.trials / self.seconds


def run(launcher: str, n_trials: int, workdir: Path, checkpoint: bool,
        profile: Path | None = None) -> Run:
    sweep = workdir / f"{launcher}_{n_trials}"
    args = ["-m", f"hydra/launcher={launcher}", *SETTING, *grid(n_trials),
            f"train.checkpoint={str(checkpoint).lower()}", f"hydra.sweep.dir={sweep}"]
    if profile is None:
        cmd = [str(BIN / "rnnexp-train"), *args]
    else:
        cmd = [sys.executable, "-m", "cProfile", "-o", str(profile), "-m", "rnnexp.cli.train", *args]
    out_path, err_path = workdir / f"{sweep.name}.out", workdir / f"{sweep.name}.err"
    with open(out_path, "w") as out, open(err_path, "w") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=workdir, stdout=out, stderr=err,
                                env={**os.environ, "HYDRA_FULL_ERROR": "1"})
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage: its peak RSS
        seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"{launcher} {n_trials}: exit {proc.returncode}\n{err_path.read_text()[-3000:]}")
    done = sum(1 for _ in sweep.glob("*/metrics.json"))
    if done != n_trials:
        sys.exit(f"{launcher} {n_trials}: {done} of {n_trials} jobs wrote metrics.json")
    return Run(launcher, n_trials, seconds, usage.ru_maxrss, out_path.read_text())


def launcher_split(stdout: str) -> str:
    """The launcher's own timing line: bookkeeping (compose, .hydra files), training, run files."""
    m = re.search(r"batches; (bookkeeping .*)$", stdout, re.M)
    return m[1] if m else "(no timing line)"


def bookkeeping_in_process(n_trials: int, workdir: Path) -> dict[str, float]:
    """CPU ms per job of the launcher's bookkeeping alone, no training: composing each job (as the
    sweeper's check and the launch do it) and writing its .hydra files, for the same grid."""
    from hydra import initialize_config_dir
    from hydra._internal.callbacks import Callbacks
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.types import HydraContext, RunMode

    from hydra_plugins.rnnexp_batched_launcher import _core
    from hydra_plugins.rnnexp_batched_launcher.batched_launcher import BatchedLauncher
    from rnnexp.config import register_configs
    from rnnexp.configs import TRAIN_DIR as CONF_DIR

    register_configs()
    initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3")
    loader = GlobalHydra.instance().config_loader()
    master = loader.load_configuration(
        "config", [f"hydra.sweep.dir={workdir / 'bookkeeping'}", "hydra/launcher=batched"],
        RunMode.MULTIRUN)
    context = HydraContext(config_loader=loader, callbacks=Callbacks())
    launcher = BatchedLauncher()
    launcher.setup(hydra_context=context, task_function=None, config=master)
    sweep = OverridesParser.create().parse_overrides(
        [*SETTING, *grid(n_trials), "train.checkpoint=false"])
    axes = [[f"{o.key_or_group}={v}" for v in (o.sweep_iterator() if o.is_sweep_override()
                                                 else [o.value()])] for o in sweep]
    jobs = [[]]
    for axis in axes:
        jobs = [job + [v] for job in jobs for v in axis]

    def cpu_ms(step) -> float:
        start = time.process_time()
        with _core._gc_paused():
            for i, job in enumerate(jobs):
                step(i, job)
        return 1e3 * (time.process_time() - start) / len(jobs)

    built: list = []
    return {"check (sweeper)": cpu_ms(lambda i, o: context.config_loader.load_sweep_config(master, o)),
            "compose (launch)": cpu_ms(lambda i, o: built.append(launcher.composer.job(o, i))),
            ".hydra files": cpu_ms(lambda i, o: _core.write_hydra_files(built[i])),
            "batch key": cpu_ms(lambda i, o: _core.batch_key(built[i].config_container(),
                                                             built[i].base))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--basic", type=int, default=48, help="trials for the basic launcher")
    ap.add_argument("--batched", type=int, nargs="+", default=[4096, 16384, 65536],
                    help="trials for the batched launcher, one command each")
    ap.add_argument("--checkpoint", action="store_true", help="train.checkpoint=true (model.npz)")
    ap.add_argument("--in-process", type=int, default=4096, metavar="N",
                    help="jobs for the in-process bookkeeping figure (0: skip it)")
    ap.add_argument("--profile", action="store_true",
                    help="also profile the smallest batched command with cProfile")
    ap.add_argument("--workdir", type=Path, default=None,
                    help="make the temporary directory for the sweeps under this one")
    opts = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="launcher_bench_", dir=opts.workdir) as tmp:
        workdir = Path(tmp)
        print(f"checkpoint={str(opts.checkpoint).lower()}, {os.cpu_count()} CPUs, load average "
              + " ".join(f"{x:.1f}" for x in os.getloadavg()))
        head = (f"{'command':<18} {'trials':>7} {'seconds':>8} {'trials/s':>9} {'x basic':>8} "
                f"{'ms/trial':>9} {'peak RSS':>9}")
        print(head)

        def row(r: Run, basic_rate: float) -> None:
            print(f"{r.launcher + ' launcher':<18} {r.trials:>7} {r.seconds:>8.1f} {r.rate:>9.1f} "
                  f"{r.rate / basic_rate:>7.0f}x {1e3 / r.rate:>9.2f} {r.max_rss_kb / 1024:>5.0f} MiB",
                  flush=True)

        basic = run("basic", opts.basic, workdir, opts.checkpoint)
        row(basic, basic.rate)
        runs = []
        for n in opts.batched:
            runs.append(run("batched", n, workdir, opts.checkpoint))
            row(runs[-1], basic.rate)
        print("\nthe batched launcher's split of its wall time, per job:")
        for r in runs:
            print(f"  {r.trials:>6}: {launcher_split(r.stdout)}")
        if opts.in_process:
            parts = bookkeeping_in_process(opts.in_process, workdir)
            print(f"\nbatched launcher bookkeeping in-process, {opts.in_process} jobs, CPU ms/job: "
                  + ", ".join(f"{k} {v:.3f}" for k, v in parts.items())
                  + f"; total {sum(parts.values()):.3f}")
        if opts.profile:
            n = min(opts.batched)
            prof = workdir / "batched.prof"
            (workdir / "profiled").mkdir()
            run("batched", n, workdir / "profiled", opts.checkpoint, profile=prof)
            print(f"\ncProfile of the batched launcher on {n} trials (cumulative):")
            pstats.Stats(str(prof)).sort_stats("cumulative").print_stats(30)


if __name__ == "__main__":
    main()
