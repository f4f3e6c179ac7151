"""The fastest-convergence study: its objective, its search space, the forbid check through the
real CLI, the statistics, and `rnnexp-study --quick` end to end."""
import dataclasses
import math

import numpy as np
import optuna
import pandas as pd
import pytest
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf
from optuna.trial import TrialState

from hydra_plugins.rnnexp_optuna_sweeper._objective import Objective
from hydra_plugins.rnnexp_optuna_sweeper._search_space import build_search_space
from rnnexp.config import OPTIMIZERS
from rnnexp.results import Results
from rnnexp.runner import Runner
from rnnexp.study import FULL, QUICK, samplers, search, section, spec, validation
from tests.conftest import ROOT, run_cli

optuna.logging.set_verbosity(optuna.logging.WARNING)
SWEEPER = spec.study_cfg().hydra.sweeper
BUDGET = spec.study_file().epochs


# ------------------------------------------------------------------------------ the objective
def job(epochs_to_converge=None, final_loss=1e-9, status="completed"):
    """A finished job as the launcher hands it to the sweeper."""
    ret = JobReturn()
    ret.status = JobStatus.COMPLETED
    ret.return_value = {"epochs": BUDGET, "epochs_run": BUDGET, "final_loss": final_loss,
                        "epochs_to_converge": epochs_to_converge,
                        "converged": epochs_to_converge is not None, "status": status}
    return ret


def trial_value(*jobs):
    """The study file's objective and aggregate over one trial's seeds."""
    objective = Objective(SWEEPER.objective, 1, SWEEPER.aggregate)
    outcome = objective.outcome(list(jobs), list(range(len(jobs))))
    assert outcome.state == TrialState.COMPLETE, outcome.reason
    return outcome.values[0]


def test_converged_seeds_score_their_epochs_and_the_trial_its_slowest_seed():
    assert trial_value(job(30), job(41), job(35)) == 41


def test_one_non_converging_seed_makes_a_trial_worse_than_any_converging_one():
    slowest_converging = trial_value(*[job(BUDGET)] * 5)
    nearly = trial_value(job(10), job(10), job(10), job(10), job(None, final_loss=1e-7))
    assert slowest_converging == BUDGET < BUDGET + 1 <= nearly


def test_non_converging_seeds_are_ranked_by_their_final_loss():
    values = [trial_value(job(20), job(None, final_loss=loss)) for loss in (1e-5, 1e-3, 0.1, 2.0)]
    assert values == sorted(values) and len(set(values)) == 4
    assert all(math.isfinite(v) and v > BUDGET for v in values)


def test_a_converging_seed_with_a_larger_loss_is_not_penalized():
    # converged means the loss stayed below the threshold: its final loss plays no part
    assert trial_value(job(25, final_loss=4e-5)) == trial_value(job(25, final_loss=1e-12)) == 25


# ------------------------------------------------------------------------------ the search space
def study_space():
    params = OmegaConf.to_container(SWEEPER.params)
    conditional = OmegaConf.to_container(SWEEPER.conditional)
    return build_search_space(params, conditional, []), conditional["optimizer"]


def test_conditional_space_gives_each_optimizer_only_its_own_arguments():
    space, branches = study_space()
    trials = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(60):
        trial = trials.ask()
        overrides = space.suggest(trial)
        name = trial.params["optimizer"]
        seen.add(name)
        assert set(trial.params) == {"optimizer", *branches[name]}, name
        assert sum(o.startswith("optimizer.") for o in overrides) == len(branches[name])
    assert seen == {"sgd", "adam", "adagrad", "rmsprop"}


def test_every_searched_argument_is_a_key_of_its_optimizer_config():
    _, branches = study_space()
    for name, args in branches.items():
        fields = {f.name for f in dataclasses.fields(OPTIMIZERS[name])}
        for key in args:
            assert key.split(".")[1] in fields, (name, key)
        assert "optimizer.lr" in args and "log" in args["optimizer.lr"]


@pytest.mark.parametrize("override", [
    "model.hidden_size=choice(5, 10)",
    "++hydra.sweeper.params.model.hidden_size='int(interval(3, 8))'",
])
@pytest.mark.slow
def test_a_space_varying_the_hidden_size_is_refused_through_the_cli(tmp_path, override):
    proc = run_cli("rnnexp-train", "-m", "--config-dir", str(ROOT / "sweeps"),
                   "--config-name", "fastest_convergence", override,
                   f"hydra.sweep.dir={tmp_path}/sweep",
                   f"hydra.sweeper.storage={tmp_path}/s.log", cwd=tmp_path, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "model.hidden_size" in lines[0] and "forbids" in lines[0]
    assert not (tmp_path / "sweep" / "0").exists()  # refused before any job ran


def test_the_study_config_is_not_taken_for_a_table_sweep():
    from rnnexp.sweeps import sweep_paths

    stems = [p.stem for p in sweep_paths()]
    assert "fastest_convergence" not in stems and "q2ii_tuned" in stems


def test_no_report_section_before_the_study_has_run(tmp_path):
    from types import SimpleNamespace

    assert section.render_section(SimpleNamespace(results=tmp_path)) == ""


# ------------------------------------------------------------------------------ the study file
def test_the_full_budget_is_the_study_files_and_the_quick_one_its_own():
    f = spec.study_file()
    full = FULL.resolved()
    assert (full.n_trials, full.n_jobs, full.trial_seeds) == (f.n_trials, f.n_jobs, f.seeds)
    assert QUICK.resolved() == QUICK


def test_the_report_setting_is_the_optimizer_of_its_table_sweep():
    assert spec.report_setting() == {"optimizer": "rmsprop", "optimizer.lr": 0.4,
                                     "optimizer.alpha": 0.5, "optimizer.eps": 1e-18,
                                     "optimizer.momentum": 0.0}


@pytest.mark.slow
def test_rnnexp_study_fails_in_one_line(tmp_path):
    proc = run_cli("rnnexp-study", "--results", "/proc/forbidden", cwd=tmp_path, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("rnnexp-study: error: ") and len(proc.stderr.splitlines()) == 1


# ------------------------------------------------------------------------------ statistics
def test_quantile_with_inf_matches_numpy_on_finite_values_and_is_inf_past_them():
    rng = np.random.default_rng(0)
    values = rng.integers(1, 100, size=20).astype(float)
    for q in (0.0, 0.25, 0.5, 0.75, 1.0):
        assert validation.quantile_with_inf(values, q) == pytest.approx(np.quantile(values, q))
    with_failures = np.array([10.0, 20.0, 30.0, np.inf])
    assert validation.quantile_with_inf(with_failures, 0.5) == 25.0
    assert validation.quantile_with_inf(with_failures, 0.75) == math.inf  # between 30 and a failure


def test_epochs_summary_counts_a_failed_seed_as_slowest():
    runs = pd.DataFrame({"converged": [True, True, False],
                         "epochs_to_converge": [40, 50, None]})
    s = validation.epochs_summary(runs, 100)
    assert (s["median"], s["min"], s["max"], s["converged"], s["seeds"]) == (50, 40, math.inf, 2, 3)
    assert validation.epochs_text(s["max"], 100) == ">100"


def test_best_so_far_ignores_failed_trials():
    curve = samplers.best_so_far([np.nan, 120.0, np.nan, 80.0, 95.0, 60.0])
    assert curve.tolist() == [math.inf, 120, 120, 80, 80, 60]


def test_busy_seconds_is_the_union_of_trial_intervals():
    from datetime import datetime, timedelta

    t0 = datetime(2026, 1, 1)
    at = lambda s: t0 + timedelta(seconds=s)  # noqa: E731
    # two overlapping trials of one batch, a pause (a resume later), one more trial
    intervals = [(at(0), at(10)), (at(2), at(12)), (at(1000), at(1005))]
    assert search.busy_seconds(intervals) == 17
    assert search.busy_seconds([]) == 0


def test_param_overrides_put_the_optimizer_group_first():
    lines = validation.param_overrides({"optimizer.lr": 0.1, "optimizer": "adam",
                                        "optimizer.amsgrad": True, "optimizer.betas.0": 0.5})
    assert lines == ["optimizer=adam", "optimizer.amsgrad=true", "optimizer.betas.0=0.5",
                     "optimizer.lr=0.1"]


# ------------------------------------------------------------------------------ end to end
@pytest.mark.slow
def test_rnnexp_study_quick_writes_every_file_and_resumes(tmp_path):
    results = tmp_path / "results"
    proc = run_cli("rnnexp-study", "--quick", "--jobs", "2", "--results", str(results),
                   cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # the comparison trained in its own process, beside the search
    assert (results / "study_runs" / "logs" / "rnnexp-study-comparison.log").exists()
    out = results / "study"
    for name in ("study.yaml", "validation.csv", "validation.md", "validation_runs.csv",
                 "loss_curves.png", "sampler_comparison.csv", "sampler_summary.csv",
                 "sampler_comparison.png", "SECTION.md", "search/optimization_results.yaml",
                 "search/trials.csv"):
        assert (out / name).stat().st_size > 0, name
    assert (results / "studies" / "fastest_convergence-quick.log").exists()

    numbers = pd.read_csv(out / "validation.csv")
    assert numbers.setting.tolist() == ["best", "report"]
    assert (numbers.seeds == len(QUICK.validation_seeds)).all()
    runs = pd.read_csv(out / "validation_runs.csv")
    assert sorted(set(runs.seed)) == list(QUICK.validation_seeds)

    _, branches = study_space()
    trials = pd.read_csv(out / "search" / "trials.csv")
    for row in trials.to_dict("records"):
        present = {k.removeprefix("params_") for k, v in row.items()
                   if k.startswith("params_") and not pd.isna(v)}
        assert present == {"optimizer", *branches[row["params_optimizer"]]}

    text = section.report_section(Results(results))
    assert "study/loss_curves.png" in text and "study/sampler_comparison.png" in text
    assert "| best" in text and "| report" in text

    # resumed with everything done: nothing runs and the files stand; a missing output is
    # written again from the storages
    recorded = (out / "study.yaml").read_text()
    again = run_cli("rnnexp-study", "--quick", "--results", str(results), cwd=tmp_path, timeout=600)
    assert again.returncode == 0 and "validation: median" in again.stdout, again.stderr
    assert (out / "study.yaml").read_text() == recorded
    (out / "validation.md").unlink()
    again = run_cli("rnnexp-study", "--quick", "--results", str(results), cwd=tmp_path, timeout=600)
    assert again.returncode == 0 and (out / "validation.md").stat().st_size > 0, again.stderr

    # same study name and storage: a second run adds no trial
    again = search.run_study(Results(results.resolve()), QUICK, Runner("basic"))
    assert sum(again["trials"].values()) == sum(
        OmegaConf.load(out / "study.yaml").search.trials.values())


def test_a_comparison_study_another_process_holds_is_passed_over(tmp_path):
    """The comparison's two processes share its studies: one held by the other (an flock on
    its claim file, here an open file description of its own) is neither trained nor counted
    in the files, which the process that trains the last one writes."""
    from contextlib import ExitStack

    results = Results(tmp_path / "results")
    studies = samplers.compare_studies(QUICK)
    with samplers.claimed(results, studies[0].name) as first:
        with samplers.claimed(results, studies[0].name) as again:
            assert first and not again
    with ExitStack() as others:
        assert all(others.enter_context(samplers.claimed(results, c.name)) for c in studies)
        runner = Runner("batched", in_process=True)
        assert samplers.train_comparison(results, QUICK, runner, backwards=True) == (0, len(studies))
        assert samplers.compare_samplers(results, QUICK, runner) is None
    assert not list(results.studies.glob("*.log")) and not results.study.exists()
    # released when its holder ends (the kernel drops an flock with its descriptor)
    with samplers.claimed(results, studies[0].name) as mine:
        assert mine


@pytest.mark.slow
def test_the_comparison_beside_the_search_gives_the_same_study(tmp_path):
    """--jobs 2 (the comparison in a second process, the search's process taking the studies it
    has not reached) and --jobs 1 (every step in turn) train the same trials and write the same
    numbers."""
    outs = {}
    for jobs in ("1", "2"):
        results = tmp_path / f"jobs{jobs}"
        proc = run_cli("rnnexp-study", "--quick", "--jobs", jobs, "--results", str(results),
                       cwd=tmp_path, timeout=600)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        outs[jobs] = results / "study"
    assert (tmp_path / "jobs2" / "study_runs" / "logs" / "rnnexp-study-comparison.log").exists()
    assert not (tmp_path / "jobs1" / "study_runs" / "logs" / "rnnexp-study-comparison.log").exists()
    for name in ("sampler_comparison.csv", "validation.csv", "validation_runs.csv"):
        assert (outs["1"] / name).read_text() == (outs["2"] / name).read_text(), name
    one, two = (pd.read_csv(outs[j] / "search" / "trials.csv") for j in ("1", "2"))
    params = [c for c in one if c.startswith("params_")] + ["value"]
    pd.testing.assert_frame_equal(one[params], two[params])


@pytest.mark.slow
def test_a_terminated_study_stops_its_comparison_and_resumes(tmp_path):
    """rnnexp-reproduce stops rnnexp-study with SIGTERM: the comparison's process ends with it
    (no orphan keeps training), and the same command then finishes the study."""
    import signal
    import subprocess
    import sys
    import time

    results = tmp_path / "results"
    args = [sys.executable, "-m", "rnnexp.cli.study", "--quick", "--jobs", "2",
            "--results", str(results)]
    proc = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    log = results / "study_runs" / "logs" / "rnnexp-study-comparison.log"
    deadline = time.monotonic() + 120
    while not log.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert log.exists(), proc.communicate()[0]
    time.sleep(1.0)  # the comparison's child is starting or training
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    children = subprocess.run(["pgrep", "-f", f"--only comparison.*{results}"],
                              capture_output=True, text=True).stdout.split()
    assert children == [], f"comparison processes left running: {children}"
    again = run_cli("rnnexp-study", "--quick", "--jobs", "2", "--results", str(results),
                    cwd=tmp_path, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert (results / "study" / "sampler_comparison.csv").exists()


def test_a_terminate_that_code_turns_into_another_error_is_still_an_interrupt():
    """SIGTERM inside code that catches the KeyboardInterrupt and raises something else (a lock
    release half done, Hydra wrapping it) still stops the study as an interrupt (exit 130)."""
    import os
    import signal

    import pytest

    from rnnexp.runner import terminate_as_interrupt

    with pytest.raises(KeyboardInterrupt):
        with terminate_as_interrupt():
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                for _ in range(10_000_000):  # the handler runs between bytecodes
                    pass
            except KeyboardInterrupt:
                raise FileNotFoundError("a lock file renamed away") from None
    with pytest.raises(FileNotFoundError):  # without a signal, an error stays itself
        with terminate_as_interrupt():
            raise FileNotFoundError("no signal")


def test_a_terminate_during_prepare_waits_until_it_is_done():
    """prepare (torch's import, in rnnexp-study) is never cut in the middle: a SIGTERM during it
    is raised as the interrupt once it returns, and the block does not run."""
    import os
    import signal

    import pytest

    from rnnexp.runner import terminate_as_interrupt

    done, ran = [], []

    def prepare():
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(2_000_000):  # the handler runs between bytecodes, here
            pass
        done.append(True)

    with pytest.raises(KeyboardInterrupt):
        with terminate_as_interrupt(prepare=prepare):
            ran.append(True)
    assert done == [True] and ran == []


def test_a_runs_bar_grows_its_total_with_runs_beyond_the_plan():
    """A trial run again after a failure adds runs the plan did not count: the bar's total grows
    and it never reads more than 100 %."""
    import io

    from tqdm import tqdm

    from rnnexp.runner import advance_bar

    with tqdm(total=10, file=io.StringIO()) as bar:
        advance_bar(bar, 8)
        assert (bar.n, bar.total) == (8, 10)
        advance_bar(bar, 5)
        assert (bar.n, bar.total) == (13, 13)
        advance_bar(bar, 0)
        assert (bar.n, bar.total) == (13, 13)
