"""The cells study: nn.RNN, nn.GRU and nn.LSTM each searched over the fastest-convergence space at
hidden 5 and validated on fresh seeds; its statistics, and `rnnexp-study --only cells --quick`
end to end through the real CLI."""
import ast
import json

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from rnnexp.results import Results
from rnnexp.study import cells
from rnnexp.study.spec import STUDY_CONFIG
from tests.conftest import run_cli


def runs(epochs: list, budget: int = 100) -> pd.DataFrame:
    """Validation rows: None for a seed that did not converge."""
    return pd.DataFrame({"seed": range(len(epochs)),
                         "converged": [e is not None for e in epochs],
                         "epochs_to_converge": [np.nan if e is None else e for e in epochs]})


def test_a_seed_that_never_converged_counts_one_past_the_budget():
    got = cells.epochs_or_past_budget(runs([20, None, 35]), 100)
    assert got.tolist() == [20.0, 101.0, 35.0]


def test_comparisons_are_unpaired_for_every_pair_of_cells():
    from rnnexp.stats import unpaired

    data = {"torch_rnn": runs([30, 32, 35, 31, 40, 33, 36, None]),
            "torch_gru": runs([20, 22, 21, 25, 19, 23, 20, 22]),
            "torch_lstm": runs([30, 29, 36, 33, 38, 31, 35, 99])}
    table = cells.comparisons(data, 100)
    assert list(zip(table.a, table.b)) == [("torch_rnn", "torch_gru"), ("torch_rnn", "torch_lstm"),
                                          ("torch_gru", "torch_lstm")]
    expected = unpaired(cells.epochs_or_past_budget(data["torch_rnn"], 100),
                        cells.epochs_or_past_budget(data["torch_gru"], 100), scale="difference")
    first = table.iloc[0]
    assert first.difference == pytest.approx(expected.estimate) and first.test == "permutation"
    assert (first.low, first.high) == pytest.approx((expected.low, expected.high))
    assert not first.too_close and first.sentence.startswith("nn.RNN ") and "more than nn.GRU" in first.sentence
    assert "n = 8 vs 8" in first.sentence
    assert table.iloc[1].too_close and table.iloc[1].sentence.startswith("too close to call")


def test_every_cell_has_its_own_study_with_the_same_budget():
    names = [cells.study_name(m, cells.CELLS_FULL) for m in cells.CELLS]
    assert names == ["cells-torch_rnn", "cells-torch_gru", "cells-torch_lstm"]
    assert STUDY_CONFIG not in names  # never resumes (or spoils) the main study
    quick = [cells.study_name(m, cells.CELLS_QUICK) for m in cells.CELLS]
    assert all(n.endswith("-quick") for n in quick)
    full = cells.CELLS_FULL.resolved()
    assert cells.planned_runs(cells.CELLS_FULL) == 3 * (full.n_trials * len(full.trial_seeds)
                                                        + len(full.validation_seeds))
    assert len(full.validation_seeds) >= 50 and not set(full.validation_seeds) & set(full.trial_seeds)


def test_no_section_before_the_cells_study_has_run(tmp_path):
    class Ctx:
        results = tmp_path

    assert cells.render_section(Ctx) == ""


@pytest.mark.slow
def test_rnnexp_study_cells_quick_writes_every_file_and_resumes(tmp_path):
    results = tmp_path / "results"
    proc = run_cli("rnnexp-study", "--only", "cells", "--quick", "--results", str(results),
                   cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = results / "cells"
    for name in (*cells.OUTPUTS, cells.SUMMARY, *(f"{m}/optimization_results.yaml" for m in cells.CELLS)):
        assert (out / name).stat().st_size > 0, name
    assert [line.split(":")[0] for line in proc.stdout.splitlines()[:3]] == ["nn.RNN", "nn.GRU", "nn.LSTM"]

    budget = cells.CELLS_QUICK.resolved()
    for model in cells.CELLS:  # each study trained its own cell, every trial on every seed
        assert (results / "studies" / f"cells-{model}-quick.log").exists()
        trials = pd.read_csv(out / model / "trials.csv")
        assert len(trials) == budget.n_trials and (trials.state == "COMPLETE").all()
        for dirs in trials.user_attrs_job_dirs:
            dirs = ast.literal_eval(dirs)  # a list's repr, as the sweeper writes it
            assert len(dirs) == len(budget.trial_seeds)
            for d in dirs:
                metrics = json.loads((results / d / "metrics.json").read_text())
                assert metrics["model"] == model and metrics["hidden_size"] == 5
    validation = pd.read_csv(out / "validation_runs.csv")
    for model in cells.CELLS:
        rows = validation[validation.setting == model]
        assert sorted(rows.seed) == list(budget.validation_seeds)
        for d in rows.run_dir:
            assert json.loads((results / d / "metrics.json").read_text())["model"] == model
    assert len(pd.read_csv(out / "comparisons.csv")) == 3

    text = cells.report_section(Results(results))
    assert "## The cell at hidden size 5" in text and "cells/loss_curves.png" in text
    for name in ("nn.RNN", "nn.GRU", "nn.LSTM"):
        assert f"| {name}" in text
    assert "unpaired" in text

    # resumed with everything done: nothing trains and the files stand
    recorded = (out / cells.SUMMARY).read_text()
    again = run_cli("rnnexp-study", "--only", "cells", "--quick", "--results", str(results),
                    cwd=tmp_path, timeout=600)
    assert again.returncode == 0 and "nn.GRU: median" in again.stdout, again.stderr
    assert (out / cells.SUMMARY).read_text() == recorded
    # a missing output is written again from the journals and run dirs, without training
    (out / "validation.md").unlink()
    before = sorted(p for p in (results / "cells_runs").rglob("metrics.json"))
    again = run_cli("rnnexp-study", "--only", "cells", "--quick", "--results", str(results),
                    cwd=tmp_path, timeout=600)
    assert again.returncode == 0 and (out / "validation.md").stat().st_size > 0, again.stderr
    assert sorted(p for p in (results / "cells_runs").rglob("metrics.json")) == before
    assert OmegaConf.load(out / cells.SUMMARY).budget.n_trials == budget.n_trials
