"""Sweep files (validation, the commands they make) and rnnexp-reproduce end to end (slow)."""
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from conftest import TABLES_DIR, run_cli
from rnnexp.results import Results
from rnnexp.sweeps import SweepError, hydra_value, load_sweep, load_sweeps, sweep_paths

GOOD = """
title: t
fixed: {word: edgement, model: torch_rnn, optimizer: adam, train.epochs: 10}
grid: {model.hidden_size: [5, 20]}
table: {rows: {key: model.hidden_size, label: hidden size}}
published: ["0.1", "0.01"]
"""


def _write(tmp_path, text, name="bad.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("text,where", [
    ("title: [unclosed", "bad.yaml: not valid YAML"),
    (GOOD.replace("table: {rows: {key: model.hidden_size, label: hidden size}}\n", ""),
     "bad.yaml: table: missing"),
    (GOOD + "colour: red\n", "bad.yaml: colour: unknown key"),
    (GOOD.replace("label: hidden size", "label: h, width: 3"), "bad.yaml: table.rows.width: unknown key"),
    (GOOD.replace("model.hidden_size: [5, 20]", "model.hidden_sise: [5, 20]")
     .replace("key: model.hidden_size", "key: model.hidden_sise"), "bad.yaml: grid.model.hidden_sise:"),
    (GOOD.replace("optimizer: adam,", "optimizer: adam, optimizer.lr: -1,"),
     "bad.yaml: fixed.optimizer.lr: optimizer.lr: must be a finite number > 0"),
    (GOOD.replace('["0.1", "0.01"]', '["0.1"]'), "bad.yaml: published: must be 2 rows of 1 values"),
    (GOOD.replace('"0.01"', '"small"'), "bad.yaml: published[1][0]: not a number"),
    (GOOD.replace("table: {rows: {key: model.hidden_size, label: hidden size}}", "table: {}"),
     "bad.yaml: table: grid key model.hidden_size is neither the rows nor the columns"),
    (GOOD.replace("train.epochs: 10", "seed: 3, train.epochs: 10"),
     "bad.yaml: fixed.seed: is set by the runner"),
])
def test_bad_sweep_files_fail_in_one_line_naming_file_and_key(tmp_path, text, where):
    with pytest.raises(SweepError) as e:
        load_sweep(_write(tmp_path, text))
    message = str(e.value)
    assert "\n" not in message and where in message, message


def test_the_report_tables_are_all_there_and_valid():
    sweeps = {s.name: s for s in load_sweeps()}
    assert {"q1_epochs", "q1_lr", "q2i_adam", "q2i_adagrad", "q2i_rmsprop", "q2ii_adam",
            "q2ii_adagrad", "q2ii_rmsprop"} <= set(sweeps)
    q1 = sweeps["q1_epochs"]
    assert q1.epochs == 10000 and q1.seeds == 20 and len(q1.readings) == 6
    assert q1.layout.rows.values == (1000, 2000, 5000, 10000)  # read from one run's history
    # the two "printed per character" readings read the sum's runs: nothing runs twice
    assert [r.printed for r in q1.readings].count("per step") == 2
    assert q1.n_runs() == 2 * 4 * 20
    assert sweeps["q2i_adam"].published[2][0].text == "0.00001"


def test_readings_fold_into_one_multirun_where_they_form_a_product():
    sweeps = {s.name: s for s in load_sweeps()}
    (q1,) = sweeps["q1_epochs"].commands(Path("runs/q1_epochs"))
    assert "model.loss_reduction=sum,mean" in q1 and "model.init=randn,uniform" in q1
    adam = sweeps["q2i_adam"].commands(Path("runs/q2i_adam"), launcher="batched")
    assert len(adam) == 2  # lr and betas change together: one multirun per reading
    assert "optimizer.lr=0.1" in adam[0] and "optimizer.betas=[0.9,0.99]" in adam[0]
    for cmd in adam:
        assert cmd[0] == "-m" and "train.skip_done=true" in cmd and "hydra/launcher=batched" in cmd
        assert "hydra.sweep.subdir=${hydra.job.override_dirname}" in cmd
        assert f"seed={','.join(map(str, range(20)))}" in cmd


def test_quick_version_scales_epochs_and_epoch_rows():
    q1 = load_sweep(TABLES_DIR / "q1_epochs.yaml").quick_version(seeds=1)
    assert q1.epochs == 1000 and q1.seeds == 1 and q1.quick
    assert q1.layout.rows.values == (100, 200, 500, 1000)
    assert Results("r").sweep_runs(q1.name, q1.quick) == Path("r/runs/quick/q1_epochs")


def test_hydra_values():
    assert hydra_value("You are a good guy") == '"You are a good guy"'
    assert hydra_value("edgement") == "edgement" and hydra_value("true") == '"true"'
    assert hydra_value([0.9, 0.999]) == "[0.9,0.999]" and hydra_value(1e-18) == "1e-18"


# ---------------------------------------------------------------- the console scripts

# An unknown sweep, a sweep file that is not YAML or lacks its layout, an unusable results dir and
# bad arguments, for rnnexp-reproduce and rnnexp-report: tests/reliability/test_bad_inputs.py
# (TOOL_CASES, in process; one per kind also through the scripts).


@pytest.mark.slow
def test_quick_reproduction_of_two_tables_resumes_and_reports(tmp_path):
    results = tmp_path / "results"
    args = ("--quick", "--seeds", "1", "--only", "q2ii_adagrad", "q2ii_tuned",
            "--launcher", "basic", "--results", str(results))
    first = run_cli("rnnexp-reproduce", *args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "4 runs trained, 0 done before, 0 failed" in first.stdout
    runs = pd.read_csv(results / "runs.csv")
    assert len(runs) == 4 and set(runs["optimizer.name"]) == {"adagrad", "rmsprop"}
    assert all(d.startswith("runs/quick/q2ii_") for d in runs.run_dir)
    table = pd.read_csv(results / "tables" / "q2ii_adagrad.csv")
    assert list(table["learning rate"]) == [0.01, 0.001, 0.4]
    assert list(table["loss published"]) == [1.2733, 1.7226, 0.0052]
    manifest = json.loads((results / "reproduce.json").read_text())
    assert manifest["quick"] and manifest["seeds"] == 1 and manifest["launcher"] == "basic"

    # a killed run (no metrics.json) is trained again; finished ones are skipped
    killed = results / "runs" / "quick" / "q2ii_adagrad" / "optimizer.lr=0.4,seed=0"
    (killed / "metrics.json").unlink()
    second = run_cli("rnnexp-reproduce", *args, cwd=tmp_path)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "1 runs trained, 3 done before" in second.stdout

    # the report rebuilds from the runs alone, and names a damaged run dir instead of counting it
    shutil.copytree(killed, killed.with_name("broken"))
    (killed.with_name("broken") / "history.csv").write_text("")
    (results / "REPORT.md").unlink()
    again = run_cli("rnnexp-report", "--results", str(results), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "skipped runs/quick/q2ii_adagrad/broken: history.csv is empty" in again.stderr
    report = (results / "REPORT.md").read_text()
    assert "**quick mode**" in report and "### Q2(ii) Adagrad" in report
    assert "`runs/quick/q2ii_adagrad/broken`: history.csv is empty" in report


@pytest.mark.slow
def test_quick_reproduction_of_everything(tmp_path):
    results = tmp_path / "results"
    proc = run_cli("rnnexp-reproduce", "--quick", "--seeds", "1", "--results", str(results),
                   cwd=tmp_path, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    names = [p.stem for p in sweep_paths()]  # the table sweeps (not the study config)
    for name in names:
        assert (results / "tables" / f"{name}.md").is_file()
        assert (results / "plots" / f"{name}.png").is_file()
    report = (results / "REPORT.md").read_text()
    assert "no runs" not in report
    assert "## The report's conclusions, checked across seeds" in report


def test_planning_reads_the_sweep_files_once_until_they_or_the_code_change(tmp_path, monkeypatch):
    """A reproduction with nothing to do still plans its steps from every sweep file; the files
    are read, checked and composed once, then taken from the results dir's cache."""
    from rnnexp import report
    from rnnexp.reproduce import Options, plan_steps

    opts = Options(results=tmp_path, seeds=None, quick=True, only=None, launcher="batched")
    first = [s.name for s in plan_steps(opts)]
    assert (tmp_path / ".cache" / report.LOADED_SWEEPS_CACHE).exists()

    def refuse():
        raise AssertionError("sweep files read again although nothing changed")

    monkeypatch.setattr(report, "load_sweeps", refuse)
    assert [s.name for s in plan_steps(opts)] == first
    assert {s.name for s in load_sweeps()} <= set(first)
    # another key (a sweep file or rnnexp's code changed): read again
    monkeypatch.setattr(report, "_sweeps_key", lambda *a: "changed")
    with pytest.raises(AssertionError, match="read again"):
        plan_steps(opts)
