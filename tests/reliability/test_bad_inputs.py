"""Bad input: exit status 2, one line `<prog>: error: ...` naming the key or value, no traceback,
and nothing left behind that looks like a result.

Every bad input of the tables below is checked in process, through the code the console scripts
run: rnnexp-train's config composed and validated as its app does, the main functions of
rnnexp-reproduce and rnnexp-report, and the Optuna sweeper built and started as `rnnexp-train -m`
does; each failure goes through `rnnexp.cli.guarded`, which prints the one line and exits 2.
One case per kind of error message also runs through the real console script (marked slow).
"""
import shutil
from pathlib import Path

import pytest
import yaml

from conftest import CONF, TABLES_DIR, run_cli

LONG_TEXT = "ab" * 5000  # 10,000 characters


def _word_file(tmp: Path, text, binary=False) -> str:
    path = tmp / "word.txt"
    path.write_bytes(text) if binary else path.write_text(text, encoding="utf-8")
    return f"word_file={path}"


# (id, overrides (a callable of tmp_path allowed), text the one-line message must contain)
TRAIN_CASES = [
    ("empty word", ["word=''"], "word: needs at least two characters"),
    ("one-character word", ["word=a"], "word: needs at least two characters"),
    ("whitespace-only word", ["word='   '"], "word: must contain a non-whitespace character"),
    # a long text belongs in word_file (no cap there: test_config.py trains a 3150-character one)
    ("10,000-character word", ["word=" + LONG_TEXT],
     "word: is longer than train.max_word_length=1000 characters (give long texts with "
     "word_file=PATH)"),
    ("missing word file", lambda t: [f"word_file={t / 'nope.txt'}"], "word_file: cannot read"),
    ("word file not UTF-8", lambda t: [_word_file(t, b"\xff\xfe\x00bad", binary=True)], "word_file: cannot read"),
    ("unquoted non-ASCII word", ["word=naïve"], "cannot parse override 'word=naïve'"),
    ("hidden size 0", ["model.hidden_size=0"], "model.hidden_size: must be >= 1"),
    ("hidden size negative", ["model.hidden_size=-3"], "model.hidden_size: must be >= 1"),
    ("hidden size fractional", ["model.hidden_size=2.5"], "model.hidden_size"),
    ("hidden size a string", ["model.hidden_size=abc"], "model.hidden_size"),
    ("lr 0", ["optimizer.lr=0"], "optimizer.lr: must be a finite number > 0"),
    ("lr negative", ["optimizer.lr=-0.1"], "optimizer.lr: must be a finite number > 0"),
    ("lr inf", ["optimizer.lr=inf"], "optimizer.lr: must be a finite number > 0"),
    ("lr nan", ["optimizer.lr=nan"], "optimizer.lr: must be a finite number > 0"),
    ("lr a string", ["optimizer.lr=fast"], "optimizer.lr"),
    ("epochs 0", ["train.epochs=0"], "train.epochs: must be >= 1"),
    ("epochs negative", ["train.epochs=-5"], "train.epochs: must be >= 1"),
    ("beta2 = 1", ["optimizer=adam", "optimizer.betas=[0.9,1.0]"], "optimizer.betas: must both be in [0, 1)"),
    ("beta1 negative", ["optimizer=adam", "optimizer.betas=[-0.1,0.9]"], "optimizer.betas: must both be in [0, 1)"),
    ("one beta", ["optimizer=adam", "optimizer.betas=[0.9]"], "optimizer.betas: must be a pair"),
    ("alpha above 1", ["optimizer.alpha=1.5"], "optimizer.alpha: must be in [0, 1]"),
    ("alpha negative", ["optimizer.alpha=-0.1"], "optimizer.alpha: must be in [0, 1]"),
    ("eps negative", ["optimizer.eps=-1e-8"], "optimizer.eps: must be a finite number >= 0"),
    ("momentum negative", ["optimizer.momentum=-0.5"], "optimizer.momentum: must be a finite number >= 0"),
    ("unknown optimizer", ["optimizer=adamw"], "Could not find 'optimizer/adamw'"),
    ("unknown model", ["model=lstm"], "Could not find 'model/lstm'"),
    ("typo'd optimizer key", ["optimizer.lrr=0.1"], "optimizer.lrr"),
    ("typo'd top-level key", ["epochs=10"], "epochs"),
    ("optimizer the NumPy model cannot use", ["model=numpy_rnn", "optimizer=rmsprop"],
     "optimizer: model numpy_rnn supports only sgd and adagrad"),
    ("NumPy init unknown", ["model=numpy_rnn", "optimizer=sgd", "model.init=zeros"], "model.init: must be randn or uniform"),
    ("negative seed", ["seed=-1"], "seed: must be >= 0"),
    ("dtype", ["dtype=float16"], "dtype: must be float32 or float64"),
    ("device", ["device=tpu"], "device: must be auto, cpu or cuda"),
    ("convergence threshold 0", ["converge.loss_below=0"], "converge.loss_below: must be a finite number > 0"),
    ("nonlinearity", ["model.nonlinearity=sigmoid"], "model.nonlinearity: must be tanh or relu"),
    ("nonlinearity of a GRU", ["model=torch_gru", "model.nonlinearity=relu"],
     "Key 'nonlinearity' not in 'TorchGRUConfig'"),
    ("LSTM without layers", ["model=torch_lstm", "model.num_layers=0"], "model.num_layers: must be >= 1"),
    ("GRU hidden size 0", ["model=torch_gru", "model.hidden_size=0"], "model.hidden_size: must be >= 1"),
    ("nesterov without momentum", ["optimizer=sgd", "optimizer.nesterov=true"], "optimizer.nesterov: needs momentum > 0"),
]
# one case per kind of message, also through the real rnnexp-train: a value `validate` refuses, a
# value of the wrong type, an unknown key, an override that does not parse, an unknown group option
TRAIN_KINDS = ["lr 0", "hidden size a string", "typo'd optimizer key", "unquoted non-ASCII word",
               "unknown optimizer"]
TRAIN_BY_ID = {c[0]: c for c in TRAIN_CASES}


def _overrides(case, tmp_path: Path) -> list[str]:
    overrides = case[1]
    return overrides(tmp_path) if callable(overrides) else overrides


def assert_one_line_error(proc, expected: str, prog: str):
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"{prog}: error: ") and expected in lines[0], lines[0]
    assert "Traceback" not in proc.stderr + proc.stdout


def assert_one_line_exit(capsys, run, expected: str, prog: str):
    """`run()` (a console script's code, in this process) exits 2 with one line on stderr."""
    with pytest.raises(SystemExit) as stop:
        run()
    out, err = capsys.readouterr()
    assert stop.value.code == 2, (stop.value.code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"{prog}: error: ") and expected in lines[0], lines[0]
    assert "Traceback" not in out + err


def no_results_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name in ("metrics.json", "history.csv", "model.npz")]


def _study_rows(tmp: Path) -> list[Path]:
    return [p for p in tmp.rglob("*") if p.suffix == ".log" and p.stat().st_size > 0
            and p.read_bytes().startswith(b'{"op_code"')]


def assert_nothing_left(tmp: Path) -> None:
    """No run, table, report or study record."""
    assert no_results_under(tmp) == []
    assert not list(tmp.rglob("*.csv")) and not list(tmp.rglob("REPORT.md"))
    assert _study_rows(tmp) == []


# ---------------------------------------------------------------- rnnexp-train

@pytest.mark.parametrize("case", TRAIN_CASES, ids=[c[0] for c in TRAIN_CASES])
def test_bad_training_input(tmp_path, make_cfg, capsys, case, tally):
    """rnnexp-train's app composes the config and validates it before anything is written or
    trained; a failure there is what the script prints."""
    from rnnexp.cli import guarded
    from rnnexp.config import ConfigError, validate

    overrides, expected, caught = _overrides(case, tmp_path), case[2], []

    def app():
        try:
            validate(make_cfg(*overrides))
        except Exception as e:
            caught.append(e)
            raise

    assert_one_line_exit(capsys, lambda: guarded("rnnexp-train", app, full=False), expected,
                         "rnnexp-train")
    if isinstance(caught[0], ConfigError):  # a value check: its message leads with the key
        assert str(caught[0]).startswith(expected), caught[0]
    tally("bad_inputs")


@pytest.mark.slow
@pytest.mark.parametrize("kind", TRAIN_KINDS)
def test_bad_training_input_through_the_cli(tmp_path, kind, tally):
    _, _, expected = case = TRAIN_BY_ID[kind]
    proc = run_cli("rnnexp-train", *_overrides(case, tmp_path), f"hydra.run.dir={tmp_path / 'run'}",
                   cwd=tmp_path)
    assert_one_line_error(proc, expected, "rnnexp-train")
    assert no_results_under(tmp_path) == []
    tally("bad_inputs")


@pytest.mark.slow
def test_bad_input_in_a_sweep_stops_it_with_one_line(tmp_path, tally):
    _, overrides, expected = TRAIN_BY_ID["empty word"]
    proc = run_cli("rnnexp-train", "-m", *overrides, f"hydra.sweep.dir={tmp_path / 'sweep'}",
                   cwd=tmp_path)
    assert_one_line_error(proc, expected, "rnnexp-train")
    assert no_results_under(tmp_path) == []
    tally("bad_inputs")


# ---------------------------------------------------------------- rnnexp-reproduce, rnnexp-report

def _sweeps_dir(tmp: Path, name: str, text: str | None = None, drop_key: str | None = None) -> Path:
    """A copy of the table sweeps with one more sweep file: `text` as is, or q2ii_tuned without
    `drop_key`."""
    folder = tmp / "sweeps"
    shutil.copytree(TABLES_DIR, folder)
    if drop_key is not None:
        raw = yaml.safe_load((folder / "q2ii_tuned.yaml").read_text(encoding="utf-8"))
        raw.pop(drop_key)
        text = yaml.safe_dump(raw)
    (folder / f"{name}.yaml").write_text(text, encoding="utf-8")
    return folder


def _file(tmp: Path) -> Path:
    path = tmp / "a_file"
    path.write_text("a regular file, not a dir\n")
    return path


def _existing(tmp: Path) -> Path:
    path = tmp / "existing"
    path.mkdir()
    return path


# (id, prog, callable tmp_path -> (args, env), text the one-line message must contain); the
# results dir `r` must not come into being
TOOL_CASES = [
    ("reproduce: unknown sweep", "rnnexp-reproduce",
     lambda t: (["--quick", "--only", "q9_missing", "--results", str(t / "r")], {}),
     "unknown sweep 'q9_missing'"),
    ("reproduce: a sweep file that is not YAML", "rnnexp-reproduce",
     lambda t: (["--quick", "--only", "q2ii_tuned", "--results", str(t / "r")],
                {"RNNEXP_SWEEPS_DIR": str(_sweeps_dir(t, "q9_broken", "title: [unclosed\n"))}),
     "q9_broken.yaml: not valid YAML"),
    ("reproduce: a sweep file without its table layout", "rnnexp-reproduce",
     lambda t: (["--quick", "--only", "q9_nolayout", "--results", str(t / "r")],
                {"RNNEXP_SWEEPS_DIR": str(_sweeps_dir(t, "q9_nolayout", drop_key="table"))}),
     "q9_nolayout.yaml: table: missing"),
    ("report: a sweep file that is not YAML", "rnnexp-report",
     lambda t: (["--results", str(_existing(t))],
                {"RNNEXP_SWEEPS_DIR": str(_sweeps_dir(t, "q9_broken", ": : :\n  - [\n"))}),
     "q9_broken.yaml: not valid YAML"),
    ("reproduce: results dir under a regular file", "rnnexp-reproduce",
     lambda t: (["--quick", "--only", "q2ii_tuned", "--results", str(_file(t) / "sub")], {}),
     "is not writable"),
    ("report: results dir is a regular file", "rnnexp-report",
     lambda t: (["--results", str(_file(t))], {}), "does not exist"),
    ("report: results dir that does not exist", "rnnexp-report",
     lambda t: (["--results", str(t / "r")], {}), "does not exist"),
    ("reproduce: --jobs 0", "rnnexp-reproduce", lambda t: (["--jobs", "0"], {}), "--jobs"),
    ("reproduce: --seeds 0", "rnnexp-reproduce", lambda t: (["--seeds", "0"], {}),
     "argument --seeds: must be an integer >= 1"),
]
# also through the real scripts: an unknown sweep, a broken sweep file, an unusable results dir, a
# bad argument
TOOL_KINDS = ["reproduce: unknown sweep", "reproduce: a sweep file that is not YAML",
              "reproduce: results dir under a regular file", "reproduce: --jobs 0"]
TOOL_BY_ID = {c[0]: c for c in TOOL_CASES}


def _main(prog: str):
    from rnnexp.cli.report import report_main
    from rnnexp.cli.reproduce import reproduce_main

    return {"rnnexp-reproduce": reproduce_main, "rnnexp-report": report_main}[prog]


@pytest.mark.parametrize("case", TOOL_CASES, ids=[c[0] for c in TOOL_CASES])
def test_bad_input_to_the_tools(tmp_path, monkeypatch, capsys, case, tally):
    _, prog, build, expected = case
    args, env = build(tmp_path)
    monkeypatch.chdir(tmp_path)  # a default --results lands here, if anything were written
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)  # one line, not the traceback
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert_one_line_exit(capsys, lambda: _main(prog)(args), expected, prog)
    assert_nothing_left(tmp_path)
    assert not (tmp_path / "r").exists() and not (tmp_path / "results").exists()
    tally("bad_inputs")


@pytest.mark.slow
@pytest.mark.parametrize("kind", TOOL_KINDS)
def test_bad_input_to_the_tools_through_the_cli(tmp_path, kind, tally):
    _, prog, build, expected = TOOL_BY_ID[kind]
    args, env = build(tmp_path)
    proc = run_cli(prog, *args, cwd=tmp_path, env=env, timeout=120)
    assert_one_line_error(proc, expected, prog)
    assert_nothing_left(tmp_path)
    assert not (tmp_path / "r").exists() and not (tmp_path / "results").exists()
    tally("bad_inputs")


# ---------------------------------------------------------------- the Optuna sweeper

STUDY = ["hydra/sweeper=optuna", "hydra.sweeper.study_name=bad", "hydra.sweeper.n_trials=2",
         "optimizer.lr=interval(0.01, 0.1)", "train.epochs=2"]
UNREACHABLE = "postgresql://nobody@127.0.0.1:1/db"

# (id, callable tmp_path -> overrides after `rnnexp-train -m` and STUDY, text the message must
# contain)
STUDY_CASES = [
    ("storage that cannot be reached",
     lambda t: [f"hydra.sweeper.storage={UNREACHABLE}"],
     f"cannot open Optuna storage '{UNREACHABLE}'"),
    ("varies a forbidden key",
     lambda t: ["hydra.sweeper.forbid=[model.hidden_size]", "model.hidden_size=int(interval(2, 8))",
                f"hydra.sweeper.storage={t / 'study.log'}"],
     "varies 'model.hidden_size', which this study forbids"),
    ("storage that is not a journal",
     lambda t: [f"hydra.sweeper.storage={_file(t)}"],
     "not an Optuna journal file"),
    ("heartbeat_interval 0", lambda t: ["hydra.sweeper.heartbeat_interval=0"],
     "hydra.sweeper.heartbeat_interval: must be null or at least 1 (seconds), got 0"),
    ("grace_period -1", lambda t: ["hydra.sweeper.grace_period=-1"],
     "hydra.sweeper.grace_period: must be null or at least 1 (seconds), got -1"),
    ("max_retry -1", lambda t: ["hydra.sweeper.max_retry=-1"],
     "hydra.sweeper.max_retry: must be null or at least 0, got -1"),
]
# also through the real rnnexp-train (exit 2 within the timeout: an unreachable server must not
# hang): a storage, a search space, a sweeper setting
STUDY_KINDS = ["storage that cannot be reached", "varies a forbidden key", "heartbeat_interval 0"]
STUDY_BY_ID = {c[0]: c for c in STUDY_CASES}


def sweep_in_process(overrides: list[str]) -> None:
    """What `rnnexp-train -m <overrides>` does before its first job (hydra's Hydra.multirun):
    compose the config for a multirun, build the sweeper from hydra.sweeper, sweep over the
    task overrides. A bad input stops it before anything is launched."""
    from hydra import initialize_config_dir
    from hydra._internal.callbacks import Callbacks
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.plugins import Plugins
    from hydra.types import HydraContext, RunMode
    from omegaconf import OmegaConf

    from rnnexp.config import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        hydra = GlobalHydra.instance().hydra
        cfg = hydra.compose_config("config", overrides, run_mode=RunMode.MULTIRUN,
                                   with_log_configuration=False)
        sweeper = Plugins.instance().instantiate_sweeper(
            config=cfg, task_function=lambda _: pytest.fail("a job was launched"),
            hydra_context=HydraContext(config_loader=hydra.config_loader, callbacks=Callbacks(cfg)))
        sweeper.sweep(arguments=OmegaConf.to_container(cfg.hydra.overrides.task, resolve=False))


@pytest.mark.parametrize("case", STUDY_CASES, ids=[c[0] for c in STUDY_CASES])
def test_bad_input_to_a_study(tmp_path, monkeypatch, capsys, case, tally):
    from rnnexp.cli import guarded

    _, build, expected = case
    overrides = [*STUDY, *build(tmp_path), f"hydra.sweep.dir={tmp_path / 'sw'}"]
    monkeypatch.chdir(tmp_path)  # the default journal file results/studies/ lands here
    run = lambda: guarded("rnnexp-train", lambda: sweep_in_process(overrides), full=False)  # noqa: E731
    assert_one_line_exit(capsys, run, expected, "rnnexp-train")
    assert_nothing_left(tmp_path)
    tally("bad_inputs")


@pytest.mark.slow
@pytest.mark.parametrize("kind", STUDY_KINDS)
def test_bad_input_to_a_study_through_the_cli(tmp_path, kind, tally):
    _, build, expected = STUDY_BY_ID[kind]
    proc = run_cli("rnnexp-train", "-m", *STUDY, *build(tmp_path),
                   f"hydra.sweep.dir={tmp_path / 'sw'}", cwd=tmp_path, timeout=120)
    assert_one_line_error(proc, expected, "rnnexp-train")
    assert_nothing_left(tmp_path)
    tally("bad_inputs")


# ---------------------------------------------------------------- what is not an error

@pytest.mark.slow
@pytest.mark.parametrize("word", ["naïve café", "🙂🙃 emoji 🙂", "שלום עולם", "مرحبا بالعالم", "日本語"])
def test_unicode_emoji_and_right_to_left_words_train(tmp_path, word):
    out = tmp_path / "run"
    proc = run_cli("rnnexp-train", f"word='{word}'", "train.epochs=3", f"hydra.run.dir={out}",
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (out / "metrics.json").exists()


@pytest.mark.slow
def test_hydra_full_error_shows_the_traceback(tmp_path):
    proc = run_cli("rnnexp-train", "optimizer.lr=0", f"hydra.run.dir={tmp_path / 'r'}",
                   cwd=tmp_path, env={"HYDRA_FULL_ERROR": "1"})
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "ConfigError" in proc.stderr
