"""Whole-command throughput of Optuna studies: rnnexp's sweeper against the official
hydra-optuna-sweeper 1.3.0 with Hydra's basic launcher, measured side by side in one run.

Rows (each a real process, start-up and end-of-study files included, timed with perf_counter
around subprocess.run; peak RSS from /usr/bin/time -f %M, else from RUSAGE_CHILDREN):

  1. peer: benchmarks/peer_app/app.py (plain Hydra app, plain torch loop) under the official sweeper
     and the basic launcher, the 2-parameter study (RMSprop lr, alpha), TPE seed 0, in memory
  2. rnnexp-train -m hydra/sweeper=optuna hydra/launcher=batched, the same 2-parameter study
  3. rnnexp-train -m --config-name fastest_convergence (conditional space over 4 optimizers,
     5 seeds per trial, grouped multivariate TPE), journal-file storage
  4. the sampler of row 3 alone, in this process, in memory, no training: the same sampler config
     (composed from the study's config and instantiated as the sweeper does) and search-space code,
     replaying row 3's journal: asking, suggesting and telling in the order row 3 did (a batch
     asked while the one before it trained), each trial told the value and state it got there.
     The sampler is seeded, so it draws row 3's trials again (the table says for how many): what
     the sampler alone costs for the same trials, the floor of row 3
  5. row 3 with hydra/sweeper/sampler=random
  6. the sampler of row 3 alone told random values, in batches of n_jobs: trials of its own, spread
     over the four optimizers, where TPE's trials in row 3 gather on the best one

The workload is the same everywhere: one-hot "edgement" -> nn.RNN(V, 5) -> nn.Linear(5, V),
cross-entropy, 100 full-batch epochs, float64, one thread.

    .venv/bin/python benchmarks/study_bench.py               # 96 peer, 480 2-param, 1024 fc trials
    .venv/bin/python benchmarks/study_bench.py --quick       # 8, 32, 64: a smoke run
    .venv/bin/python benchmarks/study_bench.py --skip-peer   # peer rate from the last measurement
    .venv/bin/python benchmarks/study_bench.py --only 3 4    # some rows (4 needs 3)

The peer is installed on first use into its own venv (--peer-venv, default benchmarks/.peer-venv,
which gets a `*` .gitignore of its own) with `pip install hydra-core==1.3.8
hydra-optuna-sweeper==1.3.0 torch==2.13.0`: a minute or two, then reused while its imports and
versions check out. pip resolves optuna 2.10.1 for the plugin; on Python 3.11 it imports and runs
with SQLAlchemy 2.x and NumPy 2.x as resolved, since the study is in memory (no RDB storage), so
nothing else is pinned. The last peer measurement at each size is kept in
<peer venv>/last_peer.json for --skip-peer and for --only without row 1.

Below the table: the fastest-convergence study against its sampler alone on the same trials
(target <= 1.3) and against the sampler told random values, the
random-sampler study's runs/s against the peer's (target >= 100x), for each rnnexp row where its
wall time went, read from its log (start-up to the study being opened; the sweeper's phases, from
its own timing line when it logs one; the batched launcher's split, summed over its launches, whose
compose time includes composing the batch for the sweeper's check; the rest), and the commands.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import resource
import shlex
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PEER_APP = ROOT / "benchmarks" / "peer_app" / "app.py"
PEER_VENV = ROOT / "benchmarks" / ".peer-venv"
PEER_PINS = ["hydra-core==1.3.8", "hydra-optuna-sweeper==1.3.0", "torch==2.13.0"]
PEER_CHECK = """
import importlib.metadata as m
assert m.version("hydra-core") == "1.3.8", m.version("hydra-core")
assert m.version("hydra-optuna-sweeper") == "1.3.0", m.version("hydra-optuna-sweeper")
assert m.version("torch").split("+")[0] == "2.13.0", m.version("torch")
import torch, optuna, hydra_plugins.hydra_optuna_sweeper.optuna_sweeper
print(optuna.__version__)
"""
TWO_PARAM = ["hydra/sweeper=optuna", "hydra/launcher=batched", "model=torch_rnn",
             "model.hidden_size=5", "word=edgement", "train.epochs=100", "optimizer=rmsprop",
             "optimizer.lr=tag(log, interval(0.001, 1.0))", "optimizer.alpha=interval(0.1, 0.999)",
             "hydra.sweeper.sampler.seed=0", "train.checkpoint=false",
             # a diverging setting is a failed trial, not a reason to stop the measurement
             "hydra.sweeper.max_failure_rate=1"]
FC = ["--config-name", "fastest_convergence", "hydra/launcher=batched"]
ROWS = [1, 2, 3, 4, 5, 6]  # peer, 2-param study, fc study, its sampler replaying it, fc random,
# the fc sampler told random values
QUICK = {"peer_trials": 8, "two_param_trials": 32, "fc_trials": 64}
DEFAULTS = {"peer_trials": 96, "two_param_trials": 480, "fc_trials": 1024}


@dataclass
class Result:
    row: int
    label: str
    trials: int
    seconds: float
    runs: int | None = None  # training runs (jobs); None: no training
    peak_mib: float | None = None
    command: str = ""
    note: str = ""
    split: dict[str, float] = field(default_factory=dict)

    @property
    def trials_per_s(self) -> float:
        return self.trials / self.seconds

    @property
    def runs_per_s(self) -> float | None:
        return None if self.runs is None else self.runs / self.seconds


# ---------------------------------------------------------------------------------- processes
def timed(cmd: list[str], cwd: Path
          ) -> tuple[float, float | None, subprocess.CompletedProcess, float]:
    """Run one command; its wall seconds, peak RSS in MiB, the process and its start (epoch s)."""
    env = {**os.environ, "HYDRA_FULL_ERROR": "1"}
    gnu_time = Path("/usr/bin/time")
    rss_file = cwd / ".rss"
    rss_file.unlink(missing_ok=True)
    full = [str(gnu_time), "-f", "%M", "-o", str(rss_file), *cmd] if gnu_time.exists() else cmd
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    wall0 = time.time()
    start = time.perf_counter()
    proc = subprocess.run(full, cwd=cwd, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if gnu_time.exists() and rss_file.exists():
        peak = int(rss_file.read_text().split()[-1]) / 1024
    else:  # the largest child so far: this command's only if it beat every earlier one
        after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        peak = after / 1024 if after > before else None
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-3000:]
        sys.exit(f"exit {proc.returncode}: {shlex.join(cmd)}\n{tail}")
    return seconds, peak, proc, wall0


def shown(cmd: list[str], tmp: Path) -> str:
    """The command as printed: the temp dir as $TMP, paths in the checkout relative to it."""
    return shlex.join(cmd).replace(str(tmp), "$TMP").replace(f"{ROOT}/", "")


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------- the peer
def peer_python(venv: Path) -> tuple[Path, str]:
    """The peer venv's python and its optuna version; installs the venv when it does not work."""
    py = venv / "bin" / "python"
    version = peer_check(py)
    if version is None:
        install_peer(venv)
        version = peer_check(py)
        if version is None:
            sys.exit(f"the peer venv {venv} does not import after installing {PEER_PINS}")
    return py, version


def peer_check(py: Path) -> str | None:
    if not py.exists():
        return None
    proc = subprocess.run([str(py), "-c", PEER_CHECK], capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else None


def install_peer(venv: Path) -> None:
    progress(f"installing the peer into {venv}: pip install {' '.join(PEER_PINS)} ...")
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    (venv / ".gitignore").write_text("*\n")  # as venvs of Python 3.13+ do
    proc = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                           "--disable-pip-version-check", *PEER_PINS],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"pip install of the peer failed:\n{(proc.stdout + proc.stderr)[-3000:]}")
    progress(f"  installed in {time.perf_counter() - start:.0f} s")


def run_peer(py: Path, n_trials: int, n_jobs: int, tmp: Path) -> Result:
    out = tmp / "peer"
    cmd = [str(py), str(PEER_APP), "-m", f"hydra.sweeper.n_trials={n_trials}",
           f"hydra.sweeper.n_jobs={n_jobs}", f"out={out}"]
    seconds, peak, _, _ = timed(cmd, tmp)
    done = len(list((out / "sweep").glob("*/.hydra/config.yaml")))
    if done != n_trials:
        sys.exit(f"peer: {done} of {n_trials} jobs ran")
    return Result(1, "peer: official sweeper + basic launcher", n_trials, seconds, n_trials, peak,
                  shown(cmd, tmp))


def cached_peer(venv: Path, n_trials: int) -> Result | None:
    """The last peer measurement at n_trials trials, else at the most trials measured."""
    path = venv / "last_peer.json"
    if not path.exists():
        return None
    by_trials = json.loads(path.read_text())
    data = by_trials.get(str(n_trials)) or by_trials[max(by_trials, key=int)]
    return Result(**{**data, "note": f"cached {data['note']}"})


def save_peer(venv: Path, result: Result) -> None:
    path = venv / "last_peer.json"
    by_trials = json.loads(path.read_text()) if path.exists() else {}
    data = {k: getattr(result, k) for k in ("row", "label", "trials", "seconds", "runs",
                                            "peak_mib", "command")}
    data["note"] = datetime.now().strftime("%Y-%m-%d %H:%M")
    by_trials[str(result.trials)] = data
    path.write_text(json.dumps(by_trials, indent=1))


# ---------------------------------------------------------------------------------- rnnexp
def run_rnnexp(row: int, label: str, args: list[str], name: str, n_trials: int, n_jobs: int,
               tmp: Path) -> Result:
    sweep = tmp / name
    cmd = [str(BIN / "rnnexp-train"), "-m", *args, f"hydra.sweeper.n_trials={n_trials}",
           f"hydra.sweeper.n_jobs={n_jobs}", f"hydra.sweeper.storage={tmp / name}.log",
           f"hydra.sweeper.study_name={name}", f"hydra.sweep.dir={sweep}"]
    seconds, peak, proc, wall0 = timed(cmd, tmp)
    finished = finished_trials(sweep)
    if finished != n_trials:
        sys.exit(f"{label}: {finished} of {n_trials} trials finished")
    runs = len(list(sweep.glob("*/metrics.json")))
    split = log_split(proc.stdout + proc.stderr, wall0, wall0 + seconds)
    return Result(row, label, n_trials, seconds, runs, peak, shown(cmd, tmp), split=split)


def finished_trials(sweep: Path) -> int:
    import yaml

    counts = yaml.safe_load((sweep / "optimization_results.yaml").read_text())["trials"]
    return counts.get("complete", 0) + counts.get("pruned", 0)


LOG_LINE = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3})\]\[HYDRA\] (.*)$", re.M)
LAUNCH_SPLIT = re.compile(r"Batched launcher: (\d+) jobs in \d+ batches; bookkeeping ([\d.]+) "
                          r"ms/job.*training ([\d.]+) ms/job.*run files ([\d.]+) ms/job")
SWEEPER_PHASE = re.compile(r"(\w+) ([\d.]+) s\b")


def log_split(log: str, wall0: float, wall1: float) -> dict[str, float]:
    """Seconds of the command by phase, read from its log: start-up (to the study being opened),
    the sweeper's phases (its own timing line if it logs one, else from the launchers' log times),
    the batched launcher's own split (summed over its launches), and the rest of the wall time."""
    events = [(datetime.strptime(m[1], "%Y-%m-%d %H:%M:%S").timestamp() + int(m[2]) / 1e3, m[3])
              for m in LOG_LINE.finditer(log)]
    opened = next((t for t, text in events if text.startswith("Study ")), None)
    ends = [(t, LAUNCH_SPLIT.search(text)) for t, text in events if LAUNCH_SPLIT.search(text)]
    if opened is None or not ends:
        return {}
    launcher = {key: sum(int(m[1]) * float(m[i]) for _, m in ends) / 1e3
                for key, i in (("bookkeeping", 2), ("training", 3), ("run files", 4))}
    own = next((text.split(":", 1)[1] for _, text in events if text.startswith("Optuna sweeper:")),
               None)
    if own is not None:
        sweeper = {name: float(s) for name, s in SWEEPER_PHASE.findall(own)}
    else:  # the launcher logs its line after composing: its bookkeeping is before the first line
        sweeper = {"between launches": ends[-1][0] - opened - sum(launcher.values()),
                   "launches": sum(launcher.values()), "end of study": wall1 - ends[-1][0]}
    parts = {"start-up": opened - wall0, **{f"sweeper {k}": v for k, v in sweeper.items()},
             **{f"launcher {k}": v for k, v in launcher.items()}}
    parts["rest"] = (wall1 - wall0) - parts["start-up"] - sum(sweeper.values())
    return parts


# ---------------------------------------------------------------------------------- the sampler
def fc_sampler():
    """The fastest-convergence study's sampler and search space, built as the sweeper builds them."""
    import optuna
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from hydra_plugins.rnnexp_optuna_sweeper._core import _instantiate
    from hydra_plugins.rnnexp_optuna_sweeper._search_space import build_search_space
    from rnnexp.config import register_configs
    from rnnexp.configs import TRAIN_DIR

    register_configs()
    with initialize_config_dir(config_dir=str(TRAIN_DIR), version_base="1.3"):
        cfg = compose("fastest_convergence", return_hydra_config=True)
    sweeper = OmegaConf.to_container(cfg.hydra.sweeper, resolve=True)
    space = build_search_space(sweeper["params"], sweeper["conditional"], [])
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sampler = _instantiate("sampler", sweeper["sampler"])
    target = sweeper["sampler"]["_target_"].rsplit(".", 1)[-1]
    return sampler, space, target


def sampler_random_values(n_trials: int, n_jobs: int) -> Result:
    """Row 6: the sampler alone, in memory, told random values (trials of its own)."""
    import optuna

    sampler, space, target = fc_sampler()
    study = optuna.create_study(sampler=sampler, direction="minimize")
    rng = random.Random(0)
    start = time.perf_counter()
    done = 0
    while done < n_trials:
        trials = [study.ask() for _ in range(min(n_jobs, n_trials - done))]
        for trial in trials:
            space.suggest(trial)
        for trial in trials:
            study.tell(trial, rng.uniform(1.0, 160.0))  # epochs-to-converge-like scores
        done += len(trials)
    seconds = time.perf_counter() - start
    return Result(6, "sampler of row 3 alone, told random values", n_trials, seconds,
                  command=f"in-process: {target} from the study's config, in-memory study, "
                          f"batches of {n_jobs}, random values")


# journal op codes (optuna.storages.journal._storage.JournalOperation)
CREATE_TRIAL, SET_TRIAL_PARAM, SET_TRIAL_STATE_VALUES, SET_TRIAL_INTERMEDIATE_VALUE = 4, 5, 6, 7


def replay_journal(journal: Path, study_name: str) -> tuple[float, int, int, str]:
    """The fastest-convergence sampler alone, in memory, asking, suggesting and telling in the
    order a study's journal records (the sweeper asks a batch while the one before it trains, then
    tells the earlier one), each trial told the value, state and intermediate values it got there.
    The sampler is seeded, so it draws the study's trials again where nothing but the sweeper's
    asks and tells drives it. -> seconds of the replay, trials that drew the study's parameters,
    the study's trials, the sampler's class name."""
    import optuna
    from optuna.trial import TrialState

    from rnnexp.tuning.storage import open_storage

    recorded = {t.number: t.params for t in
                optuna.load_study(study_name=study_name, storage=open_storage(str(journal)))
                .get_trials(deepcopy=False)}
    with open(journal, encoding="utf-8") as f:
        ops = [json.loads(line) for line in f if line.strip()]
    if any(op["op_code"] == CREATE_TRIAL and "params" in op for op in ops):
        sys.exit(f"{journal}: a trial was enqueued with fixed parameters; the replay "
                 "reproduces sampled trials only")
    sampler, space, target = fc_sampler()
    study = optuna.create_study(sampler=sampler, direction="minimize")
    states = {int(s): s for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
    live: dict[int, optuna.Trial] = {}
    unsuggested: set[int] = set()
    start = time.perf_counter()
    for op in ops:
        code = op["op_code"]
        if code == CREATE_TRIAL:
            journal_id = len(live)  # a journal's trial ids count from 0 in creation order
            live[journal_id] = study.ask()
            unsuggested.add(journal_id)
        elif code == SET_TRIAL_PARAM and op["trial_id"] in unsuggested:
            unsuggested.discard(op["trial_id"])  # the sweeper suggests all of a trial's at once
            space.suggest(live[op["trial_id"]])
        elif code == SET_TRIAL_INTERMEDIATE_VALUE:
            live[op["trial_id"]].report(op["intermediate_value"], op["step"])
        elif code == SET_TRIAL_STATE_VALUES and op["state"] in states:
            state = states[op["state"]]
            values = op.get("values") if state == TrialState.COMPLETE else None
            study.tell(live[op["trial_id"]], values, state=state, skip_if_finished=True)
    seconds = time.perf_counter() - start
    replayed = {t.number: t.params for t in study.get_trials(deepcopy=False)}
    same = sum(replayed.get(n) == params for n, params in recorded.items())
    return seconds, same, len(recorded), target


def sampler_replay(journal: Path, study_name: str) -> Result:
    """Row 4: row 3's journal replayed by its sampler alone (replay_journal)."""
    seconds, same, total, target = replay_journal(journal, study_name)
    return Result(4, "sampler of row 3 alone, replaying row 3's asks and tells", total, seconds,
                  note=f"the same parameters as row 3 in {same} of {total} trials",
                  command=f"in-process: {target} from the study's config, in-memory study, "
                          f"row 3's journal replayed: its order of asks and tells, its values")


# ---------------------------------------------------------------------------------- output
def fmt(x: float | None, digits: int = 1) -> str:
    if x is None:
        return "–"
    return f"{x:.{digits}f}" if x < 100 else f"{x:.0f}"


def ratio(x: float | None, peer: float | None) -> str:
    return "–" if x is None or not peer else f"{x / peer:.1f}×"


def table(results: list[Result], peer: Result | None) -> list[str]:
    peer_rate = peer.trials_per_s if peer else None
    lines = ["| # | command | trials | runs | seconds | trials/s | runs/s | trials/s vs peer "
             "| runs/s vs peer | peak MiB |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(results, key=lambda r: r.row):
        label = r.label + (f" ({r.note})" if r.note else "")
        lines.append(f"| {r.row} | {label} | {r.trials} | {r.runs if r.runs is not None else '–'} "
                     f"| {r.seconds:.1f} | {fmt(r.trials_per_s)} | {fmt(r.runs_per_s)} "
                     f"| {ratio(r.trials_per_s, peer_rate)} | {ratio(r.runs_per_s, peer_rate)} "
                     f"| {fmt(r.peak_mib, 0)} |")
    return lines


def findings(by_row: dict[int, Result], peer: Result | None) -> list[str]:
    lines = []
    if 3 in by_row and 4 in by_row:
        lines.append(f"fastest-convergence study / its sampler alone on the same trials "
                     f"(row 3 / row 4 seconds): {by_row[3].seconds / by_row[4].seconds:.2f} "
                     f"(target <= 1.3)")
    if 3 in by_row and 6 in by_row:
        lines.append(f"fastest-convergence study / its sampler alone told random values "
                     f"(row 3 / row 6 seconds): {by_row[3].seconds / by_row[6].seconds:.2f}")
    if 5 in by_row and peer:
        lines.append(f"random-sampler study runs/s / peer runs/s (row 5 / row 1): "
                     f"{by_row[5].runs_per_s / peer.runs_per_s:.0f}× (target >= 100×)")
    for r in sorted(by_row.values(), key=lambda r: r.row):
        if r.split:
            lines.append(f"row {r.row}, {r.seconds:.1f} s: {split_text(r.split)}")
    return lines


def split_text(split: dict[str, float]) -> str:
    launcher = ", ".join(f"{k[len('launcher '):]} {v:.1f}" for k, v in split.items()
                         if k.startswith("launcher "))
    parts = [f"start-up {split['start-up']:.1f}"]
    for key, v in split.items():
        if key.startswith("sweeper "):
            name = key[len("sweeper "):]
            inside = f" (launcher: {launcher})" if name in ("launch", "launches") else ""
            parts.append(f"{name} {v:.1f}{inside}")
    return ", ".join(parts) + f", rest {split['rest']:.1f}"


def environment(peer_optuna: str | None) -> str:
    import optuna
    import torch

    peer = f"; peer optuna {peer_optuna}" if peer_optuna else ""
    return (f"Python {platform.python_version()}, torch {torch.__version__}, "
            f"optuna {optuna.__version__}{peer}; {os.cpu_count()} cores, "
            f"load {os.getloadavg()[0]:.2f}")


# ---------------------------------------------------------------------------------- main
def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    ap.add_argument("--peer-trials", type=int, help="trials of row 1 (default 96; --quick 8)")
    ap.add_argument("--peer-jobs", type=int, default=8, help="n_jobs of row 1")
    ap.add_argument("--two-param-trials", type=int,
                    help="trials of row 2 (default 480; --quick 32)")
    ap.add_argument("--two-param-jobs", type=int, default=32, help="n_jobs of row 2")
    ap.add_argument("--fc-trials", type=int,
                    help="trials of rows 3, 5 and 6 (default 1024; --quick 64)")
    ap.add_argument("--fc-jobs", type=int, default=16, help="n_jobs of rows 3 and 6")
    ap.add_argument("--random-jobs", type=int, help="n_jobs of row 5 (default: --fc-jobs)")
    ap.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    ap.add_argument("--skip-peer", action="store_true",
                    help="do not run row 1: use the last measured peer rate, if any")
    ap.add_argument("--only", type=int, nargs="+", choices=ROWS, metavar="ROW",
                    help="run only these rows (1-6); row 4 replays row 3, so it needs row 3")
    ap.add_argument("--peer-venv", type=Path, default=PEER_VENV, help="the peer's venv")
    opts = ap.parse_args()
    sizes = QUICK if opts.quick else DEFAULTS
    for key, value in sizes.items():
        if getattr(opts, key) is None:
            setattr(opts, key, value)
    opts.random_jobs = opts.random_jobs or opts.fc_jobs
    rows = set(opts.only or ROWS)
    if 4 in rows and 3 not in rows:
        ap.error("row 4 replays row 3's study: run rows 3 and 4 together (--only 3 4)")
    if opts.skip_peer:
        rows.discard(1)
    opts.rows = rows
    return opts


def main() -> None:
    opts = parse_args()
    results: dict[int, Result] = {}
    peer_optuna = None
    with tempfile.TemporaryDirectory(prefix="study_bench_") as tmp_name:
        tmp = Path(tmp_name)
        if 1 in opts.rows:
            py, peer_optuna = peer_python(opts.peer_venv)
            progress(f"row 1: peer, {opts.peer_trials} trials ...")
            results[1] = run_peer(py, opts.peer_trials, opts.peer_jobs, tmp)
            save_peer(opts.peer_venv, results[1])
        if 2 in opts.rows:
            progress(f"row 2: rnnexp 2-parameter study, {opts.two_param_trials} trials ...")
            results[2] = run_rnnexp(2, "rnnexp: same 2-parameter study", TWO_PARAM, "two_param",
                                    opts.two_param_trials, opts.two_param_jobs, tmp)
        if 3 in opts.rows:
            progress(f"row 3: rnnexp fastest-convergence study, {opts.fc_trials} trials ...")
            results[3] = run_rnnexp(3, "rnnexp: fastest-convergence study (TPE, 5 seeds)", FC,
                                    "fc", opts.fc_trials, opts.fc_jobs, tmp)
        if 4 in opts.rows:
            progress("row 4: the sampler alone, replaying row 3 ...")
            results[4] = sampler_replay(tmp / "fc.log", "fc")
        if 5 in opts.rows:
            progress(f"row 5: rnnexp fastest-convergence study, random sampler, "
                     f"{opts.fc_trials} trials ...")
            results[5] = run_rnnexp(5, "rnnexp: fastest-convergence study, random sampler",
                                    [*FC, "hydra/sweeper/sampler=random",
                                     "hydra.sweeper.sampler.seed=0"],
                                    "fc_random", opts.fc_trials, opts.random_jobs, tmp)
        if 6 in opts.rows:
            progress(f"row 6: the sampler alone, random values, {opts.fc_trials} trials ...")
            results[6] = sampler_random_values(opts.fc_trials, opts.fc_jobs)
    peer = results.get(1) or cached_peer(opts.peer_venv, opts.peer_trials)
    table_rows = dict(results)
    if 1 not in results and peer is not None:
        table_rows[1] = peer
    print(environment(peer_optuna))
    print()
    print("\n".join(table(list(table_rows.values()), peer)))
    print()
    if notes := findings(results, peer):
        print("\n".join(notes))
        print()
    for r in sorted(table_rows.values(), key=lambda r: r.row):
        print(f"{r.row}: {r.command}")


if __name__ == "__main__":
    main()
