"""Bad input through the real CLI: exit status 2, one line naming the key or value, no traceback,
and nothing left behind that looks like a result."""
import shutil
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, run_cli

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
    ("10,000-character word", lambda t: [_word_file(t, LONG_TEXT)], "word_file: is longer than train.max_word_length"),
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
    ("optimizer the NumPy model cannot use", ["model=numpy_rnn", "optimizer=rmsprop"], "model numpy_rnn supports only sgd and adagrad"),
    ("NumPy init unknown", ["model=numpy_rnn", "optimizer=sgd", "model.init=zeros"], "model.init: must be randn or uniform"),
    ("negative seed", ["seed=-1"], "seed: must be >= 0"),
    ("dtype", ["dtype=float16"], "dtype: must be float32 or float64"),
    ("device", ["device=tpu"], "device: must be auto, cpu or cuda"),
    ("convergence threshold 0", ["converge.loss_below=0"], "converge.loss_below: must be a finite number > 0"),
    ("nonlinearity", ["model.nonlinearity=sigmoid"], "model.nonlinearity: must be tanh or relu"),
    ("nesterov without momentum", ["optimizer=sgd", "optimizer.nesterov=true"], "optimizer.nesterov: needs momentum > 0"),
]


def assert_one_line_error(proc, expected: str, prog: str):
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"{prog}: error: ") and expected in lines[0], lines[0]
    assert "Traceback" not in proc.stderr + proc.stdout


def no_results_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name in ("metrics.json", "history.csv", "model.npz")]


@pytest.mark.parametrize("case", TRAIN_CASES, ids=[c[0] for c in TRAIN_CASES])
def test_bad_training_input(tmp_path, case, tally):
    _, overrides, expected = case
    overrides = overrides(tmp_path) if callable(overrides) else overrides
    proc = run_cli("rnnexp-train", *overrides, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert_one_line_error(proc, expected, "rnnexp-train")
    assert no_results_under(tmp_path) == []
    tally("bad_inputs")


@pytest.mark.parametrize("case", TRAIN_CASES[:6], ids=[c[0] for c in TRAIN_CASES[:6]])
def test_bad_input_in_a_sweep_stops_it_with_one_line(tmp_path, case, tally):
    _, overrides, expected = case
    overrides = overrides(tmp_path) if callable(overrides) else overrides
    proc = run_cli("rnnexp-train", "-m", *overrides, f"hydra.sweep.dir={tmp_path / 'sweep'}",
                   cwd=tmp_path)
    assert_one_line_error(proc, expected, "rnnexp-train")
    assert no_results_under(tmp_path) == []
    tally("bad_inputs")


# ---------------------------------------------------------------- the other tools and the sweeper

def _sweeps_dir(tmp: Path, name: str, text: str | None = None, drop_key: str | None = None) -> Path:
    """A copy of sweeps/ with one more sweep file: `text` as is, or q2ii_tuned without `drop_key`."""
    folder = tmp / "sweeps"
    shutil.copytree(ROOT / "sweeps", folder)
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


STUDY = ["-m", "hydra/sweeper=optuna", "hydra.sweeper.study_name=bad", "hydra.sweeper.n_trials=2",
         "optimizer.lr=interval(0.01, 0.1)", "train.epochs=2"]
UNREACHABLE = "postgresql://nobody@127.0.0.1:1/db"

# (id, prog, callable tmp_path -> (args, env), text the one-line message must contain)
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
     lambda t: (["--results", str((t / "r").mkdir() or t / "r")],
                {"RNNEXP_SWEEPS_DIR": str(_sweeps_dir(t, "q9_broken", ": : :\n  - [\n"))}),
     "q9_broken.yaml: not valid YAML"),
    ("reproduce: results dir under a regular file", "rnnexp-reproduce",
     lambda t: (["--quick", "--only", "q2ii_tuned", "--results", str(_file(t) / "sub")], {}),
     "is not writable"),
    ("report: results dir is a regular file", "rnnexp-report",
     lambda t: (["--results", str(_file(t))], {}), "does not exist"),
    ("reproduce: --jobs 0", "rnnexp-reproduce", lambda t: (["--jobs", "0"], {}), "--jobs"),
    ("study: storage that cannot be reached", "rnnexp-train",
     lambda t: ([*STUDY, f"hydra.sweeper.storage={UNREACHABLE}", f"hydra.sweep.dir={t / 'sw'}"], {}),
     f"cannot open Optuna storage '{UNREACHABLE}'"),
    ("study: varies a forbidden key", "rnnexp-train",
     lambda t: ([*STUDY, "hydra.sweeper.forbid=[model.hidden_size]",
                 "model.hidden_size=int(interval(2, 8))", f"hydra.sweep.dir={t / 'sw'}",
                 f"hydra.sweeper.storage={t / 'study.log'}"], {}),
     "varies 'model.hidden_size', which this study forbids"),
    ("study: storage that is not a journal", "rnnexp-train",
     lambda t: ([*STUDY, f"hydra.sweeper.storage={_file(t)}", f"hydra.sweep.dir={t / 'sw'}"], {}),
     "not an Optuna journal file"),
]


def _study_rows(tmp: Path) -> list[Path]:
    return [p for p in tmp.rglob("*") if p.suffix == ".log" and p.stat().st_size > 0
            and p.read_bytes().startswith(b'{"op_code"')]


@pytest.mark.parametrize("case", TOOL_CASES, ids=[c[0] for c in TOOL_CASES])
def test_bad_input_to_the_tools(tmp_path, case, tally):
    """Exit 2 within the subprocess timeout (an unreachable server must not hang), one line, and
    no run, table or study record left behind."""
    _, prog, build, expected = case
    args, env = build(tmp_path)
    proc = run_cli(prog, *args, cwd=tmp_path, env=env, timeout=120)
    assert_one_line_error(proc, expected, prog)
    assert no_results_under(tmp_path) == []
    assert not [p for p in tmp_path.rglob("*.csv")] and not list(tmp_path.rglob("REPORT.md"))
    assert _study_rows(tmp_path) == []
    tally("bad_inputs")


@pytest.mark.parametrize("word", ["naïve café", "🙂🙃 emoji 🙂", "שלום עולם", "مرحبا بالعالم", "日本語"])
def test_unicode_emoji_and_right_to_left_words_train(tmp_path, word):
    out = tmp_path / "run"
    proc = run_cli("rnnexp-train", f"word='{word}'", "train.epochs=3", f"hydra.run.dir={out}",
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (out / "metrics.json").exists()


def test_hydra_full_error_shows_the_traceback(tmp_path):
    proc = run_cli("rnnexp-train", "optimizer.lr=0", f"hydra.run.dir={tmp_path / 'r'}",
                   cwd=tmp_path, env={"HYDRA_FULL_ERROR": "1"})
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "ConfigError" in proc.stderr
