"""What one Optuna storage record costs: ask + suggest, one report and tell per trial, for the
storages a study can use, measured side by side in one run.

    python benchmarks/storage_bench.py            # 256 trials, two float params, random sampler
    python benchmarks/storage_bench.py --trials 64

Rows: in memory; the journal file as rnnexp opens it (appends flushed, not fsynced:
rnnexp.tuning.storage.flushed_journal_backend); Optuna's own journal file backend (each append
fsynced); SQLite. Files go to a temporary directory on the same disk as the working directory.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import optuna


def storages(tmp: Path) -> dict:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    from rnnexp.tuning.storage import flushed_journal_backend

    return {
        "in memory": lambda: optuna.storages.InMemoryStorage(),
        "journal file, flushed (rnnexp)": lambda: JournalStorage(
            flushed_journal_backend(str(tmp / "flushed.log"))),
        "journal file, fsynced (Optuna's backend)": lambda: JournalStorage(
            JournalFileBackend(str(tmp / "fsynced.log"))),
        "sqlite": lambda: optuna.storages.RDBStorage(f"sqlite:///{tmp / 'study.db'}"),
    }


def measure(storage, n_trials: int) -> tuple[float, float, float]:
    """Mean ms per trial of ask + 2 suggests, of one report, and of tell."""
    study = optuna.create_study(storage=storage, sampler=optuna.samplers.RandomSampler(seed=0))
    ask = report = tell = 0.0
    for _ in range(n_trials):
        t0 = time.perf_counter()
        trial = study.ask()
        x, y = trial.suggest_float("x", 0, 1), trial.suggest_float("y", 0, 1)
        t1 = time.perf_counter()
        trial.report(x + y, step=1)
        t2 = time.perf_counter()
        study.tell(trial, x + y)
        t3 = time.perf_counter()
        ask, report, tell = ask + t1 - t0, report + t2 - t1, tell + t3 - t2
    return tuple(1e3 * v / n_trials for v in (ask, report, tell))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=256)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
        rows = [(name, *measure(make(), args.trials)) for name, make in storages(Path(tmp)).items()]
    print(f"{args.trials} trials, two float params, random sampler; ms per trial\n")
    print("| storage | ask + suggest | one report | tell |")
    print("|---|---|---|---|")
    for name, ask, report, tell in rows:
        print(f"| {name} | {ask:.2f} | {report:.2f} | {tell:.2f} |")


if __name__ == "__main__":
    main()
