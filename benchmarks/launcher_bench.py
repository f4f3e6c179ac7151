"""Whole-command throughput of rnnexp-train sweeps: the basic launcher against hydra/launcher=batched.

Every command is a real `rnnexp-train -m` process, so start-up, the sweeper's checks, composing,
training and every file each job writes are all in the figure. The workload is the report's Q2(ii)
setting: torch_rnn, hidden 5, "edgement", 100 epochs, RMSprop, a grid over learning rates x seeds.

    .venv/bin/python benchmarks/launcher_bench.py                 # 48 basic, 256 and 4096 batched
    .venv/bin/python benchmarks/launcher_bench.py --basic 16 --batched 256 --profile

It prints trials per second of each command, the batched/basic ratio, the batched launcher's own
split of its wall time per job (bookkeeping = composing the job's config and writing its .hydra
files; training = train_group; run files = model.npz, history.csv, metrics.json), read from the
line the launcher logs at the end, and the bookkeeping alone measured in-process in CPU time (a
figure that other load on the machine disturbs less). --profile also runs the largest batched grid under cProfile and
prints the functions with the most cumulative time.
"""
from __future__ import annotations

import argparse
import os
import pstats
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
SETTING = ["model=torch_rnn", "model.hidden_size=5", "word=edgement", "optimizer=rmsprop",
           "train.epochs=100"]


def grid(n_trials: int) -> list[str]:
    """lr x seed overrides for n_trials jobs: as many seeds as learning rates (or a few more)."""
    n_lr = max(1, int(n_trials ** 0.5))
    while n_trials % n_lr:
        n_lr -= 1
    lrs = ",".join(f"{0.005 * (k + 1):g}" for k in range(n_lr))
    return [f"optimizer.lr={lrs}", f"seed=range(0,{n_trials // n_lr})"]


def run(launcher: str, n_trials: int, workdir: Path, profile: Path | None = None) -> tuple[float, str]:
    sweep = workdir / f"{launcher}_{n_trials}"
    args = ["-m", f"hydra/launcher={launcher}", *SETTING, *grid(n_trials), f"hydra.sweep.dir={sweep}"]
    if profile is None:
        cmd = [str(BIN / "rnnexp-train"), *args]
    else:
        cmd = [sys.executable, "-m", "cProfile", "-o", str(profile), "-m", "rnnexp.cli.train", *args]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True,
                          env={**os.environ, "HYDRA_FULL_ERROR": "1"})
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{launcher} {n_trials}: exit {proc.returncode}\n{proc.stderr[-3000:]}")
    done = len(list(sweep.glob("*/metrics.json")))
    if done != n_trials:
        sys.exit(f"{launcher} {n_trials}: {done} of {n_trials} jobs wrote metrics.json")
    return seconds, proc.stdout


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
    from rnnexp.configs import TRAIN_DIR as CONF_DIR

    initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3")
    loader = GlobalHydra.instance().config_loader()
    master = loader.load_configuration(
        "config", [f"hydra.sweep.dir={workdir / 'bookkeeping'}", "hydra/launcher=batched"],
        RunMode.MULTIRUN)
    context = HydraContext(config_loader=loader, callbacks=Callbacks())
    launcher = BatchedLauncher()
    launcher.setup(hydra_context=context, task_function=None, config=master)
    sweep = OverridesParser.create().parse_overrides([*SETTING, *grid(n_trials)])
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
            "batch key": cpu_ms(lambda i, o: _core.batch_key(built[i]))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--basic", type=int, default=48, help="trials for the basic launcher")
    ap.add_argument("--batched", type=int, nargs="+", default=[256, 4096],
                    help="trials for the batched launcher, one command each")
    ap.add_argument("--profile", action="store_true",
                    help="also profile the largest batched command with cProfile")
    opts = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="launcher_bench_") as tmp:
        workdir = Path(tmp)
        print(f"{'command':<28} {'trials':>7} {'seconds':>8} {'trials/s':>9}")
        seconds, _ = run("basic", opts.basic, workdir)
        basic_rate = opts.basic / seconds
        print(f"{'basic launcher':<28} {opts.basic:>7} {seconds:>8.2f} {basic_rate:>9.2f}")
        rates = {}
        for n in opts.batched:
            seconds, stdout = run("batched", n, workdir)
            rates[n] = n / seconds
            print(f"{'batched launcher':<28} {n:>7} {seconds:>8.2f} {rates[n]:>9.2f}")
            print(f"    {launcher_split(stdout)}")
        for n, rate in rates.items():
            print(f"batched {n} / basic {opts.basic}: {rate / basic_rate:.1f}x trials/s")
        n = max(opts.batched)
        parts = bookkeeping_in_process(n, workdir)
        print(f"\nbatched launcher bookkeeping in-process, {n} jobs, CPU ms/job: "
              + ", ".join(f"{k} {v:.3f}" for k, v in parts.items())
              + f"; total {sum(parts.values()):.3f}")
        if opts.profile:
            n = max(opts.batched)
            prof = workdir / "batched.prof"
            run("batched", n, workdir / "profiled" if (workdir / "profiled").mkdir() is None else workdir,
                profile=prof)
            print(f"\ncProfile of the batched launcher on {n} trials (cumulative):")
            pstats.Stats(str(prof)).sort_stats("cumulative").print_stats(30)


if __name__ == "__main__":
    main()
