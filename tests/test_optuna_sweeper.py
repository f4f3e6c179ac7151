"""hydra/sweeper=optuna: grammar, conditional spaces, hooks, and the CLI end to end on a toy app."""
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from hydra_plugins.rnnexp_optuna_sweeper._search_space import (
    SearchSpaceError,
    build_search_space,
    check_forbidden,
    parse_overrides,
    quoted,
)
from rnnexp.tuning import hooks
from rnnexp.tuning import storage as optuna_storage

APP = Path(__file__).parent / "fixtures" / "toy_app" / "app.py"
optuna.logging.set_verbosity(optuna.logging.WARNING)


# ------------------------------------------------------------------------------ grammar
@pytest.mark.parametrize(
    "text, expected",
    [
        ("interval(0, 1)", FloatDistribution(0.0, 1.0)),
        ("int(interval(2, 9))", IntDistribution(2, 9)),
        ("tag(log, interval(0.001, 1))", FloatDistribution(0.001, 1.0, log=True)),
        ("tag(log, int(interval(1, 100)))", IntDistribution(1, 100, log=True)),
        # the end is included where it lies on the grid, as the official plugin reads range
        ("range(1, 5)", IntDistribution(1, 5)),
        ("range(0, 10, 3)", IntDistribution(0, 9, step=3)),
        ("tag(log, range(1, 9))", IntDistribution(1, 9, log=True)),
        ("range(0.1, 0.5, 0.1)", FloatDistribution(0.1, 0.5, step=0.1)),
        ("range(-5.5, 5.5, step=0.5)", FloatDistribution(-5.5, 5.5, step=0.5)),
        ("shuffle(range(1, 3))", CategoricalDistribution([1, 2])),
        ("sort(choice(3, 1, 2))", CategoricalDistribution([1, 2, 3])),
        ("sort(3, 1, 2)", CategoricalDistribution([1, 2, 3])),
        ("sort(choice(b, a), reverse=true)", CategoricalDistribution(["b", "a"])),
        ("sort(range(1, 4))", IntDistribution(1, 4)),
        ("choice(sgd, rmsprop)", CategoricalDistribution(["sgd", "rmsprop"])),
        ("1,2,3", CategoricalDistribution([1, 2, 3])),
        ("choice(true, off, 0.5)", CategoricalDistribution([True, "off", 0.5])),
    ],
)
def test_every_param_form_maps_to_its_distribution(text, expected):
    space = build_search_space({"a.b": text}, None, [])
    assert [(p.key, p.distribution) for p in space.params] == [("a.b", expected)]
    assert space.fixed == {}


def test_fixed_values_lists_and_command_line_overrides():
    space = build_search_space(
        {"train.epochs": 100, "optimizer": ["sgd", "adam"], "x": "interval(0, 1)"},
        None,
        ["x=choice(1, 2)", "+model.bias=false", "optimizer.lr=tag(log, interval(1e-3, 1))"],
    )
    assert space.fixed == {"train.epochs": "100", "+model.bias": "false"}
    dists = {p.key: p.distribution for p in space.params}
    assert dists == {
        "optimizer": CategoricalDistribution(["sgd", "adam"]),
        "x": CategoricalDistribution([1, 2]),  # the command line replaces params' entry
        "optimizer.lr": FloatDistribution(1e-3, 1.0, log=True),
    }


@pytest.mark.parametrize("name, key", [("cmaes", "independent_sampler"), ("gp", "independent_sampler"),
                                       ("qmc", "independent_sampler"), ("gp", "constraints_func"),
                                       ("nsgaii", "constraints_func"), ("tpe", "constraints_func"),
                                       ("cmaes", "source_trials")])
@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
@pytest.mark.filterwarnings("ignore:`constraints_func` has been deprecated:FutureWarning")
def test_the_official_sampler_keys_reach_optuna(name, key):
    """hydra-optuna-sweeper's sampler keys are accepted and passed to Optuna 5's sampler: a
    sampler as a config of its own, a callable or trial list through Hydra's instantiate."""
    import math

    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from hydra_plugins.rnnexp_optuna_sweeper import config

    schema = {"tpe": config.TPESamplerConfig, "cmaes": config.CmaEsSamplerConfig,
              "gp": config.GPSamplerConfig,
              "qmc": config.QMCSamplerConfig, "nsgaii": config.NSGAIISamplerConfig}[name]
    value, attribute, expected = {
        "independent_sampler": ({"_target_": "optuna.samplers.RandomSampler", "seed": 3},
                                "_independent_sampler", optuna.samplers.RandomSampler),
        "constraints_func": ({"_target_": "hydra.utils.get_method", "path": "math.fabs"},
                             "_constraints_func", math.fabs),
        "source_trials": ({"_target_": "builtins.list"}, "_source_trials", []),
    }[key]
    sampler = instantiate(OmegaConf.merge(OmegaConf.structured(schema), {key: value}))
    got = getattr(sampler, attribute)
    assert isinstance(got, expected) if isinstance(expected, type) else got == expected


def test_motpe_is_refused_with_its_replacement(tmp_path):
    from hydra_plugins.rnnexp_optuna_sweeper._core import REMOVED_SAMPLERS

    assert "hydra/sweeper/sampler=tpe" in REMOVED_SAMPLERS["MOTPESampler"]


def test_a_choice_of_lists_reaches_the_jobs_as_lists():
    """As hydra-optuna-sweeper: each list is a categorical choice by its Hydra text, and the job's
    override gives the list back."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    space = build_search_space({"optimizer.betas": "choice([0.9,0.99],[0.5,0.9])", "word": "choice(a, b)"},
                               None, [])
    assert space.params[0].distribution == CategoricalDistribution(["[0.9,0.99]", "[0.5,0.9]"])
    seen = set()
    for _ in range(12):
        lines = space.suggest(optuna.create_study(sampler=optuna.samplers.RandomSampler()).ask())
        betas = OverridesParser.create().parse_overrides([lines[0]])[0].value()
        assert betas in ([0.9, 0.99], [0.5, 0.9])
        seen.add(tuple(betas))
        assert lines[1] in ("word=a", "word=b")
    assert len(seen) == 2


def test_the_grid_sampler_takes_hydras_range_values():
    space = build_search_space({"x": "range(1, 4)", "y": "range(0.0, 1.0, 0.5)", "z": "choice(a, b)"},
                               None, [])
    assert space.grid() == {"x": [1, 2, 3], "y": [0.0, 0.5], "z": ["a", "b"]}


def test_a_deletion_on_the_command_line_goes_to_every_job():
    space = build_search_space({"x": "interval(0, 1)"}, None, ["~z", "~w=3"])
    assert space.fixed == {"~z": None, "~w": "3"}
    lines = space.suggest(optuna.create_study().ask())
    assert lines[1:] == ["~z", "~w=3"] and lines[0].startswith("x=")


def test_nested_params_are_flattened_into_dotted_keys():
    # hydra.sweeper.params.optimizer.lr='interval(0,1)' on the command line nests the key
    space = build_search_space({"optimizer": {"lr": "interval(0, 1)"}}, None, [])
    assert [p.key for p in space.params] == ["optimizer.lr"]


@pytest.mark.parametrize(
    "params, message",
    [
        ({"x": "interval(1, 0)"}, "x"),
        ({"x": "tag(log, interval(0, 1))"}, "x"),
        ({"x": "range(5, 1)"}, "empty"),
        ({"x": "tag(log, choice(1, 2))"}, "choice"),
        ({"x": "interval(0,"}, "interval"),
    ],
)
def test_bad_params_fail_with_one_line_naming_them(params, message):
    with pytest.raises(SearchSpaceError, match=message) as err:
        build_search_space(params, None, [])
    assert "\n" not in str(err.value)


def test_forbidden_key_cannot_vary_but_may_be_fixed():
    space = build_search_space({"model.hidden_size": "2,5", "x": "interval(0,1)"}, None, [])
    with pytest.raises(SearchSpaceError, match="'model.hidden_size'.*forbids"):
        check_forbidden(space, ["model.hidden_size"])
    fixed = build_search_space({"model.hidden_size": 5, "x": "interval(0,1)"}, None, [])
    check_forbidden(fixed, ["model.hidden_size"])


@pytest.mark.parametrize("text", ["true", "1", "it's", "a\\b", "a\\", "a\\'b", "/tmp/x y.log"])
def test_quoted_text_reads_back_as_the_same_string(text):
    assert parse_overrides([f"k={quoted(text)}"])[0].value() == text


# ------------------------------------------------------------------------------ conditional spaces
CONDITIONAL = {
    "optimizer": {
        "sgd": {"optimizer.momentum": "interval(0, 0.99)"},
        "rmsprop": {"optimizer.momentum": "interval(0, 0.99)", "optimizer.alpha": "interval(0.5, 0.999)"},
    }
}


def test_conditional_params_exist_only_under_their_parent_value():
    space = build_search_space({"optimizer": "choice(sgd, rmsprop, adam)"}, CONDITIONAL, [])
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(30):
        trial = study.ask()
        keys = {line.split("=")[0] for line in space.suggest(trial)}
        opt = trial.params["optimizer"]
        seen.add(opt)
        expected = {"optimizer"} | set(CONDITIONAL["optimizer"].get(opt, {}))
        assert keys == expected
        assert set(trial.params) == expected
        study.tell(trial, 0.0)
    assert seen == {"sgd", "rmsprop", "adam"}


def test_conditional_on_an_unknown_parent_or_value_is_refused():
    with pytest.raises(SearchSpaceError, match="parent 'optimizer'"):
        build_search_space({"x": "interval(0,1)"}, CONDITIONAL, [])
    with pytest.raises(SearchSpaceError, match="'rmsprop' is not one of"):
        build_search_space({"optimizer": "choice(sgd, adam)"}, CONDITIONAL, [])


# ------------------------------------------------------------------------------ hooks
def _journal_study(tmp_path, pruner=None):
    url = optuna_storage.resolve_storage(str(tmp_path / "s.log"), "unused")
    study = optuna.create_study(storage=optuna_storage.open_storage(url), study_name="s", pruner=pruner)
    if pruner is not None:
        study.set_user_attr(hooks.PRUNER_ATTR, {"_target_": "optuna.pruners.ThresholdPruner",
                                                "upper": 1.0})
    return study, url


def test_no_hook_outside_a_trial():
    assert hooks.hook_for(None, env={}) is None


def test_lead_hook_reports_every_n_epochs_through_the_storage(tmp_path):
    study, url = _journal_study(tmp_path)
    trial = study.ask()
    ref = hooks.TrialRef(url, "s", trial.number, lead=True, report_every=3)
    hook = hooks.hook_for(None, env=ref.to_env())  # not registered: opened from the file
    assert not any(hook.report(e, 1.0 / e) for e in range(1, 10))
    assert hook.report(10, float("nan")) is False
    reloaded = optuna.load_study(study_name="s", storage=optuna_storage.open_storage(url))
    assert reloaded.trials[0].intermediate_values == {3: 1 / 3, 6: 1 / 6, 9: 1 / 9}


def test_prune_decision_reaches_the_other_seeds(tmp_path):
    study, url = _journal_study(tmp_path, pruner=optuna.pruners.ThresholdPruner(upper=1.0))
    trial = study.ask()
    lead = hooks.hook_for(None, env=hooks.TrialRef(url, "s", trial.number, True, 1).to_env())
    follower = hooks.hook_for(None, env=hooks.TrialRef(url, "s", trial.number, False, 5).to_env())
    assert follower.report(1, 9.0) is False  # the lead has not been pruned yet
    assert lead.report(1, 0.5) is False
    assert lead.report(2, 2.0) is True  # above the threshold: prune
    assert follower.report(2, 9.0) is False  # checks every 5 epochs only
    assert follower.report(5, 9.0) is True


def test_in_process_registry_is_used_before_the_storage(tmp_path):
    study = optuna.create_study()  # in memory: reachable only through the registry
    trial = study.ask()
    ref = hooks.TrialRef(optuna_storage.MEMORY_STORAGE, study.study_name, trial.number, True, 1)
    assert hooks.hook_for(None, env=ref.to_env()) is None
    hooks.register_live_trial(ref, trial)
    try:
        hooks.hook_for(None, env=ref.to_env()).report(1, 0.25)
    finally:
        hooks.unregister_live_trial(ref)
    assert study.trials[0].intermediate_values == {1: 0.25}


def test_unreachable_storage_is_one_line_naming_the_url(tmp_path):
    url = f"sqlite:///{tmp_path}/no/such/dir/x.db"
    with pytest.raises(optuna_storage.StorageError, match="no/such/dir/x.db") as err:
        optuna_storage.open_storage(url)
    assert "\n" not in str(err.value)


def test_a_torn_last_journal_line_is_dropped(tmp_path):
    study, url = _journal_study(tmp_path)
    study.tell(study.ask(), 1.0)
    with open(url, "ab") as f:
        f.write(b'{"op_code": 4, "wor')  # a write cut short by SIGKILL
    again = optuna.load_study(study_name="s", storage=optuna_storage.open_storage(url))
    again.tell(again.ask(), 2.0)
    assert [t.value for t in optuna.load_study(study_name="s", storage=optuna_storage.open_storage(url)).trials] == [1.0, 2.0]


# ------------------------------------------------------------------------- the CLI (slow)
def run_app(tmp_path, *overrides, check=True, wait=True):
    cmd = [sys.executable, str(APP), "-m", "hydra/sweeper=optuna", "hydra.sweeper.storage=journal",
           "hydra.sweeper.study_name=toy", f"hydra.sweep.dir={tmp_path}/sweep",
           "hydra.sweeper.sampler.seed=0", *overrides]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    if not wait:
        return subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def load(tmp_path):
    storage = optuna_storage.open_storage(str(tmp_path / "results" / "studies" / "toy.log"))
    return optuna.load_study(study_name="toy", storage=storage)


def states(study):
    return [t.state for t in study.trials]


@pytest.mark.slow
def test_study_runs_stores_and_writes_results(tmp_path):
    proc = run_app(tmp_path, "hydra.sweeper.n_trials=4", "hydra.sweeper.n_jobs=2",
                   "x=interval(0, 1)", "optimizer=choice(sgd, adam)", "train.epochs=5")
    assert proc.stdout.count("Launching 2 jobs") == 2  # n_jobs trials per launcher batch
    study = load(tmp_path)  # the journal file reopens with plain optuna
    assert states(study) == [TrialState.COMPLETE] * 4
    sweep = tmp_path / "sweep"
    best = min(study.trials, key=lambda t: t.value)
    metrics = json.loads((sweep / str(best.number) / "metrics.json").read_text())
    assert best.value == metrics["final_loss"]
    import yaml

    summary = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert summary["best_trial"] == best.number and summary["best_params"] == best.params
    assert len(pd.read_csv(sweep / "trials.csv")) == 4
    for png in ("optimization_history.png", "slice.png"):  # the default plots
        assert (sweep / png).stat().st_size > 0
    assert not (sweep / "param_importances.png").exists()  # fANOVA costs seconds: asked for
    # n_trials is the total: running the same command again runs nothing more
    run_app(tmp_path, "hydra.sweeper.n_trials=4", "x=interval(0, 1)", "optimizer=choice(sgd, adam)")
    assert len(load(tmp_path).trials) == 4


def test_the_first_batch_is_checked_once_per_override_line():
    from hydra_plugins.rnnexp_optuna_sweeper._core import covering_jobs

    batch = [[f"x={x}", f"seed={s}", f"++hydra.sweep.subdir={3 * x + s}",
              f"++hydra.job.env_set.RNNEXP_TRIAL={x}"] for x in range(4) for s in range(3)]
    chosen = covering_jobs(batch)
    # the first trial's jobs, one per seed, then one job of each other trial
    assert chosen == [batch[0], batch[1], batch[2], batch[3], batch[6], batch[9]]
    lines = {line for job in batch for line in job if not line.startswith("++hydra")}
    assert lines == {line for job in chosen for line in job if not line.startswith("++hydra")}


@pytest.mark.slow
def test_motpe_stops_the_sweep_in_one_line_naming_the_replacement(tmp_path):
    proc = run_app(tmp_path, "hydra/sweeper/sampler=motpe", "hydra.sweeper.sampler.n_ehvi_candidates=12",
                   "x=interval(0, 1)", "train.epochs=2", check=False)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert "MOTPESampler" in last and "hydra/sweeper/sampler=tpe" in last, proc.stderr


@pytest.mark.slow
def test_a_bad_key_in_the_space_stops_the_study_with_hydras_message(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "rnnexp.cli.train", "-m", "hydra/sweeper=optuna",
         f"hydra.sweep.dir={tmp_path / 'sweep'}", f"hydra.sweeper.storage={tmp_path / 'j.log'}",
         "hydra.sweeper.n_trials=4", "hydra.sweeper.n_jobs=2", "train.epochs=3",
         "optimizer.lrr=interval(0.01, 0.1)"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "optimizer.lrr" in proc.stderr and not (tmp_path / "sweep" / "0" / "metrics.json").exists()


@pytest.mark.slow
def test_resume_after_sigkill_runs_only_the_missing_trials(tmp_path):
    args = ["hydra.sweeper.n_trials=5", "hydra.sweeper.n_jobs=1", "x=interval(0, 1)",
            "train.epochs=10"]
    proc = run_app(tmp_path, *args, "train.sleep=0.05", wait=False)
    journal = tmp_path / "results" / "studies" / "toy.log"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # kill once two trials are done and a third runs
        if journal.exists() and journal.read_text().count('"state":1') >= 2:
            break
        time.sleep(0.05)
    time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = load(tmp_path)
    assert TrialState.RUNNING in states(before) and len(before.trials) < 5

    run_app(tmp_path, *args)
    study = load(tmp_path)
    finished = [t for t in study.trials if t.state == TrialState.COMPLETE]
    abandoned = [t for t in study.trials if t.state == TrialState.FAIL]
    assert len(finished) == 5 and TrialState.RUNNING not in states(study)
    assert all("left running" in t.user_attrs["fail_reason"] for t in abandoned)
    job_nums = [n for t in study.trials for n in t.user_attrs["job_nums"]]
    assert len(job_nums) == len(set(job_nums))  # no job number, hence no job dir, used twice
    for t in finished:  # the app refuses to write into a dir that already has metrics.json
        assert (tmp_path / "sweep" / str(t.user_attrs["job_nums"][0]) / "metrics.json").exists()


@pytest.mark.slow
def test_pruned_trials_are_pruned_in_trials_csv(tmp_path):
    run_app(tmp_path, "hydra.sweeper.n_trials=8", "hydra.sweeper.n_jobs=1", "x=interval(0, 1)",
            "hydra/sweeper/sampler=random", "hydra/sweeper/pruner=median",
            "hydra.sweeper.pruner.n_startup_trials=2", "hydra.sweeper.report_every=2",
            "train.epochs=10")
    trials = pd.read_csv(tmp_path / "sweep" / "trials.csv")
    assert (trials.state == "PRUNED").any() and (trials.state == "COMPLETE").any()
    for number in trials.number[trials.state == "PRUNED"]:
        metrics = json.loads((tmp_path / "sweep" / str(number) / "metrics.json").read_text())
        assert metrics["status"] == "pruned" and metrics["epochs_run"] < 10


@pytest.mark.slow
def test_a_diverging_job_fails_alone_and_the_study_goes_on(tmp_path):
    run_app(tmp_path, "hydra.sweeper.n_trials=6", "x=interval(0, 1)", "diverge_above=0.6",
            "raise_above=0.9", "hydra/sweeper/sampler=random", "hydra.sweeper.max_failure_rate=1",
            "train.epochs=3")
    study = load(tmp_path)
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert len([t for t in study.trials if t.state == TrialState.COMPLETE]) == 6
    assert failed and all(t.params["x"] > 0.6 for t in failed)
    reasons = {t.user_attrs["fail_reason"] for t in failed}
    assert all("diverged" in r or "RuntimeError" in r for r in reasons)


@pytest.mark.slow
def test_failures_beyond_max_failure_rate_stop_the_sweep(tmp_path):
    proc = run_app(tmp_path, "hydra.sweeper.n_trials=6", "hydra.sweeper.n_jobs=1",
                   "x=interval(0.7, 1)", "diverge_above=0.6", "hydra.sweeper.max_failure_rate=0.2",
                   "train.epochs=3", check=False)
    assert proc.returncode != 0 and "max_failure_rate=0.2" in proc.stderr
    # as hydra-optuna-sweeper: judged per batch, so the first batch (1 of 1 failed) stops it
    assert states(load(tmp_path)) == [TrialState.FAIL]
    assert (tmp_path / "sweep" / "trials.csv").exists()


@pytest.mark.slow
def test_a_failed_batch_raises_the_jobs_own_error_by_default(tmp_path):
    """max_failure_rate defaults to 0.0, as in hydra-optuna-sweeper: a batch with a failed trial
    stops the sweep, with the job's own exception."""
    proc = run_app(tmp_path, "hydra.sweeper.n_trials=6", "x=interval(0.7, 1)", "raise_above=0.5",
                   "train.epochs=2", check=False)
    assert proc.returncode != 0
    assert "RuntimeError: x=" in proc.stderr and "is above raise_above" in proc.stderr, proc.stderr
    assert states(load(tmp_path)) == [TrialState.FAIL] * 2  # the first batch (n_jobs 2)


RETURN_APP = Path(__file__).parent / "fixtures" / "return_app" / "app.py"


def run_return_app(tmp_path, *overrides):
    cmd = [sys.executable, str(RETURN_APP), "-m", "hydra/sweeper=optuna", "hydra.sweeper.study_name=ret",
           "hydra.sweeper.storage=journal",
           f"hydra.sweep.dir={tmp_path}/sweep", "hydra.sweeper.sampler.seed=0", *overrides]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    tmp_path.mkdir(parents=True, exist_ok=True)
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_the_tasks_return_value_is_the_objective(tmp_path):
    """A task that returns its objective, as hydra-optuna-sweeper's apps do: a number for one
    direction, a tuple for two (no objective key needed); a value that is no objective fails its
    trial with the reason, and the sweep goes on where max_failure_rate allows."""
    proc = run_return_app(tmp_path / "one", "hydra.sweeper.n_trials=4", "x=interval(-1, 1)",
                          "y=interval(-1, 1)")
    assert proc.returncode == 0, proc.stderr
    study = optuna.load_study(study_name="ret", storage=optuna_storage.open_storage(
        str(tmp_path / "one" / "results" / "studies" / "ret.log")))
    for t in study.trials:
        assert t.value == pytest.approx((t.params["x"] - 1) ** 2 + t.params["y"] ** 2)
    warned = run_return_app(tmp_path / "one", "hydra.sweeper.n_trials=4", "x=interval(-1, 1)",
                            "y=interval(-1, 1)")
    said = warned.stdout + warned.stderr  # Hydra's log goes to stdout
    assert warned.returncode == 0 and "nothing to run" in said  # logged at WARNING
    assert "hydra.sweeper.n_trials" in said and "hydra.sweeper.study_name" in said

    proc = run_return_app(tmp_path / "two", "returns=tuple", "hydra.sweeper.n_trials=4",
                          "hydra.sweeper.direction=[minimize,minimize]", "x=interval(-1, 1)",
                          "y=interval(-1, 1)")
    assert proc.returncode == 0, proc.stderr
    study = optuna.load_study(study_name="ret", storage=optuna_storage.open_storage(
        str(tmp_path / "two" / "results" / "studies" / "ret.log")))
    assert all(len(t.values) == 2 for t in study.trials)
    assert (tmp_path / "two" / "sweep" / "pareto_front.png").exists()

    proc = run_return_app(tmp_path / "bad", "returns=text", "hydra.sweeper.n_trials=4",
                          "hydra.sweeper.max_failure_rate=1", "x=interval(-1, 1)")
    assert proc.returncode == 0, proc.stderr
    study = optuna.load_study(study_name="ret", storage=optuna_storage.open_storage(
        str(tmp_path / "bad" / "results" / "studies" / "ret.log")))
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert failed and all(t.params["x"] > 0 for t in failed)
    assert all("not a number" in t.user_attrs["fail_reason"] for t in failed)


@pytest.mark.slow
def test_seeds_run_as_jobs_of_one_trial_and_are_aggregated(tmp_path):
    proc = run_app(tmp_path, "hydra.sweeper.n_trials=2", "hydra.sweeper.n_jobs=2",
                   "hydra.sweeper.seeds=[0,1,2]", "hydra.sweeper.aggregate=median",
                   "x=interval(0, 1)", "train.epochs=5")
    assert "Launching 6 jobs" in proc.stdout
    for t in load(tmp_path).trials:
        finals = []
        for num, seed in zip(t.user_attrs["job_nums"], [0, 1, 2]):
            run_dir = tmp_path / "sweep" / str(num)
            assert f"seed: {seed}" in (run_dir / ".hydra" / "config.yaml").read_text()
            finals.append(json.loads((run_dir / "metrics.json").read_text())["final_loss"])
        assert t.value == pytest.approx(sorted(finals)[1])
        assert t.user_attrs["seed_values"] == [[v] for v in finals]


@pytest.mark.slow
def test_objective_expression_and_bad_storage(tmp_path):
    run_app(tmp_path, "hydra.sweeper.n_trials=2", "x=interval(0, 1)", "train.epochs=5",
            "hydra.sweeper.objective='final_loss + epochs_run'")
    for t in load(tmp_path).trials:
        metrics = json.loads((tmp_path / "sweep" / str(t.number) / "metrics.json").read_text())
        assert t.value == pytest.approx(metrics["final_loss"] + 5)
    bad = f"sqlite:///{tmp_path}/missing/dir/s.db"
    proc = run_app(tmp_path, f"hydra.sweeper.storage={bad}", "x=interval(0, 1)", check=False)
    assert proc.returncode != 0
    assert f"cannot open Optuna storage '{bad}'" in proc.stderr


@pytest.mark.slow
def test_grid_sampler_visits_each_point_once_and_stops(tmp_path):
    run_app(tmp_path, "hydra/sweeper/sampler=grid", "hydra.sweeper.n_trials=10", "x=0.1,0.5",
            "optimizer=choice(sgd, adam)", "train.epochs=3")
    points = {(t.params["x"], t.params["optimizer"]) for t in load(tmp_path).trials}
    assert len(load(tmp_path).trials) == 4 and len(points) == 4


@pytest.mark.slow
def test_multi_objective_writes_the_pareto_front(tmp_path):
    import yaml

    run_app(tmp_path, "hydra/sweeper/sampler=nsgaii", "hydra.sweeper.direction=[minimize,minimize]",
            "hydra.sweeper.objective=[final_loss,epochs_run]", "hydra.sweeper.n_trials=4",
            "x=interval(0, 1)", "train.epochs=range(2, 10)")
    summary = yaml.safe_load((tmp_path / "sweep" / "optimization_results.yaml").read_text())
    front = {s["trial"] for s in summary["solutions"]}
    assert front == {t.number for t in load(tmp_path).best_trials}
    assert (tmp_path / "sweep" / "pareto_front.png").exists()


@pytest.mark.slow
def test_rnnexp_train_study_end_to_end(tmp_path):
    """The real app: a learning-rate study with pruning, storage reopened with plain Optuna."""
    script = Path(sys.executable).parent / "rnnexp-train"
    proc = subprocess.run(
        [str(script), "-m", "hydra/sweeper=optuna", "hydra.sweeper.n_trials=6",
         "hydra.sweeper.study_name=lr", "hydra/sweeper/pruner=median",
         "hydra.sweeper.pruner.n_startup_trials=2", "hydra.sweeper.report_every=5",
         "hydra.sweeper.sampler.seed=0", f"hydra.sweep.dir={tmp_path}/sweep",
         "optimizer.lr=tag(log, interval(0.001, 1))", "train.epochs=20"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    storage = optuna_storage.open_storage(str(tmp_path / "results" / "studies" / "lr.log"))
    study = optuna.load_study(study_name="lr", storage=storage)
    finished = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 6
    for t in study.trials:
        metrics = json.loads((tmp_path / "sweep" / str(t.number) / "metrics.json").read_text())
        if t.state == TrialState.COMPLETE:
            assert t.value == metrics["final_loss"]
        else:
            assert metrics["status"] in ("pruned", "diverged")


@pytest.mark.slow
def test_custom_search_space_suggests_parameters_that_depend_on_others(tmp_path):
    """hydra-optuna-sweeper's custom_search_space: a function (cfg, trial) run for every trial
    after params; what it suggests goes to the job as overrides. A leading dot finds it beside
    the app's script, as the official example writes it."""
    proc = run_return_app(tmp_path, "hydra.sweeper.n_trials=6", "x=interval(-1, 1)",
                          "hydra.sweeper.custom_search_space=.app.near_x", "spread=0.25")
    assert proc.returncode == 0, proc.stderr
    study = optuna.load_study(study_name="ret", storage=optuna_storage.open_storage(
        str(tmp_path / "results" / "studies" / "ret.log")))
    assert len(study.trials) == 6
    for t in study.trials:
        assert abs(t.params["z"] - t.params["x"]) <= 0.25
        assert t.value == pytest.approx((t.params["x"] - 1) ** 2 + t.params["z"] ** 2)
        overrides = (tmp_path / "sweep" / str(t.number) / ".hydra" / "overrides.yaml").read_text()
        assert "- z=" in overrides

    bad = run_return_app(tmp_path / "bad", "hydra.sweeper.custom_search_space=.app.nowhere",
                         "x=interval(-1, 1)")
    assert bad.returncode != 0
    assert "hydra.sweeper.custom_search_space='.app.nowhere'" in bad.stderr, bad.stderr


@pytest.mark.slow
def test_a_plain_hydra_app_keeps_its_study_in_memory_and_runs_it_again(tmp_path):
    """storage: null is in memory, as in hydra-optuna-sweeper: the same command with a named study
    runs its trials again instead of finding them done (rnnexp-train chooses a journal file)."""
    cmd = [sys.executable, str(RETURN_APP), "-m", "hydra/sweeper=optuna", "hydra.sweeper.study_name=ret",
           f"hydra.sweep.dir={tmp_path}/sweep", "hydra.sweeper.n_trials=3", "x=interval(-1, 1)"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    for _ in range(2):
        proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert "3 of 3 trials to run" in proc.stdout and "memory" in proc.stdout
    assert not (tmp_path / "results").exists()


def _returned(value):
    from hydra.core.utils import JobReturn, JobStatus

    ret = JobReturn()
    ret.status, ret.return_value = JobStatus.COMPLETED, value
    return ret


@pytest.mark.parametrize("objective, directions, returned, expected", [
    (None, 1, 0.5, [0.5]),
    (None, 1, 3, [3.0]),
    (None, 2, (0.5, 2), [0.5, 2.0]),
    (None, 2, [0.5, 2], [0.5, 2.0]),
    (None, 1, {"loss": 0.5}, [0.5]),  # a dict of one number per direction, in their order
    (None, 2, {"loss": 0.5, "size": 7}, [0.5, 7.0]),
    ("loss", 1, {"loss": 0.5, "size": 7}, [0.5]),
    (["size", "loss * 2"], 2, {"loss": 0.5, "size": 7}, [7.0, 1.0]),
    ("final_loss", 1, 0.25, [0.25]),  # an objective set for dicts leaves a number as it is
])
def test_the_objective_comes_from_what_the_job_returns(objective, directions, returned, expected):
    from hydra_plugins.rnnexp_optuna_sweeper._objective import Objective

    outcome = Objective(objective, directions, "mean").outcome([_returned(returned)], [None])
    assert outcome.state == TrialState.COMPLETE and outcome.values == expected


@pytest.mark.parametrize("objective, directions, returned, reason", [
    (None, 1, {"loss": 0.5, "size": 7}, "keys ['loss', 'size']: set hydra.sweeper.objective"),
    (None, 1, {"loss": "low"}, "set hydra.sweeper.objective"),
    (None, 2, 0.5, "returned 1 values for 2 directions"),
    (None, 1, (0.5, 2), "returned 2 values for 1 directions"),
    (None, 1, "low", "returned str 'low': not a number"),
    (None, 1, None, "returned NoneType None"),
    (None, 1, float("nan"), "objective value 0 is nan"),
    (["a", "b"], 1, {"a": 1}, "objective has 2 entries but direction has 1"),
    ("loss", 1, {"size": 7}, "objective 'loss': name 'loss' is not defined"),
])
def test_a_return_value_that_is_no_objective_fails_its_trial_with_the_reason(
        objective, directions, returned, reason):
    from hydra_plugins.rnnexp_optuna_sweeper._objective import Objective

    outcome = Objective(objective, directions, "mean").outcome([_returned(returned)], [None])
    assert outcome.state == TrialState.FAIL and reason in outcome.reason, outcome.reason


def test_tpe_defaults_are_the_official_plugins_and_rnnexp_train_takes_optunas():
    """A plain app's `hydra/sweeper/sampler=tpe` is hydra-optuna-sweeper's (independent TPE, no
    constant liar: a seeded study asks what it asked there); rnnexp-train's keeps Optuna 5's
    multivariate TPE and a constant liar for its batches."""
    from hydra import compose, initialize_config_dir

    from rnnexp.config import register_configs
    from rnnexp.configs import TRAIN_DIR

    with initialize_config_dir(config_dir=str(RETURN_APP.parent / "conf"), version_base="1.3"):
        plain = compose("config", overrides=["hydra/sweeper=optuna"], return_hydra_config=True)
    assert plain.hydra.sweeper.sampler.multivariate is False
    assert plain.hydra.sweeper.sampler.constant_liar is False
    assert plain.hydra.sweeper.objective is None and plain.hydra.sweeper.storage is None
    register_configs()
    with initialize_config_dir(config_dir=str(TRAIN_DIR), version_base="1.3"):
        ours = compose("config", overrides=["hydra/sweeper=optuna"], return_hydra_config=True)
    assert ours.hydra.sweeper.sampler.multivariate is None
    assert ours.hydra.sweeper.sampler.constant_liar is True


def test_rnnexp_train_keeps_its_studies_in_journal_files():
    from hydra import compose, initialize_config_dir

    from rnnexp.config import register_configs
    from rnnexp.configs import TRAIN_DIR

    register_configs()
    with initialize_config_dir(config_dir=str(TRAIN_DIR), version_base="1.3"):
        cfg = compose("config", overrides=["hydra/sweeper=optuna"], return_hydra_config=True)
    assert cfg.hydra.sweeper.storage == "journal" and cfg.hydra.sweeper.objective == "final_loss"


# ------------------------------------------------------------------ as hydra-optuna-sweeper asks
def plain_optuna_loop(sampler, directions, space, extend, objective, n_trials, n_jobs):
    """What hydra-optuna-sweeper does with a study, written with plain Optuna: ask n_jobs trials,
    suggest each distribution of `space` in order (config params first, a command-line override
    in the place of the param it replaces), then `extend(trial)` (custom_search_space), run,
    tell each trial its job's return value."""
    study = optuna.create_study(sampler=sampler, directions=directions)
    asked = []
    while len(asked) < n_trials:
        batch = [study.ask() for _ in range(min(n_jobs, n_trials - len(asked)))]
        for trial in batch:
            for name, dist in space:
                trial._suggest(name, dist)
            extend(trial)
        for trial in batch:
            study.tell(trial, objective(trial.params))
            asked.append(dict(trial.params))
    return asked


def run_searched_app(tmp_path, *overrides):
    cmd = [sys.executable, str(RETURN_APP), "--config-name", "searched", "-m",
           f"hydra.sweep.dir={tmp_path}/sweep", *overrides]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    import yaml

    jobs = []
    for num in range(16):
        lines = yaml.safe_load((tmp_path / "sweep" / str(num) / ".hydra" / "overrides.yaml").read_text())
        jobs.append({k: yaml.safe_load(v) for k, v in (line.split("=", 1) for line in lines)})
    return jobs, yaml.safe_load((tmp_path / "sweep" / "optimization_results.yaml").read_text())


def _near_x(trial):
    x = trial.params["x"]
    trial.suggest_float("z", x - 0.25, x + 0.25)


def _sphere(p):
    return (p["x"] - 1) ** 2 + p["y"] ** 2 + p.get("z", 0.0) ** 2


# (overrides after the app's own config, sampler, directions, space in suggestion order, extend,
# objective, n_jobs): the three kinds of hydra-optuna-sweeper's example apps
SEARCHED_CASES = {
    "one objective, an override in its param's place, batches of 3": (
        ["hydra.sweeper.n_jobs=3", "x=range(-3, 3, step=0.25)"],
        lambda: optuna.samplers.TPESampler(seed=7, multivariate=False, constant_liar=False),
        ["minimize"],
        [("x", FloatDistribution(-3, 3, step=0.25)), ("y", CategoricalDistribution([-2, 0, 2]))],
        lambda trial: None, _sphere, 3),
    "a tuple for two directions": (
        ["returns=tuple", "hydra.sweeper.direction=[minimize,minimize]", "hydra/sweeper/sampler=nsgaii",
         "hydra.sweeper.sampler.population_size=6", "y=range(0, 2, step=0.5)"],
        lambda: optuna.samplers.NSGAIISampler(seed=7, population_size=6),
        ["minimize", "minimize"],
        [("x", FloatDistribution(-4, 4, step=0.5)), ("y", FloatDistribution(0, 2, step=0.5))],
        lambda trial: None, lambda p: (_sphere(p), p["x"] ** 2 + (p["y"] - 1) ** 2), 1),
    "custom_search_space": (
        ["hydra.sweeper.custom_search_space=.app.near_x", "spread=0.25"],
        lambda: optuna.samplers.TPESampler(seed=7, multivariate=False, constant_liar=False),
        ["minimize"],
        [("x", FloatDistribution(-4, 4, step=0.5)), ("y", CategoricalDistribution([-2, 0, 2]))],
        _near_x, _sphere, 1),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(SEARCHED_CASES))
def test_a_seeded_study_asks_and_finds_what_hydra_optuna_sweeper_would(tmp_path, case):
    """An app that keeps its space in its config, run as hydra-optuna-sweeper's examples are: the
    plugin's sampler defaults (TPE: not multivariate, no constant liar), the params suggested in
    the config's order, the task's return value told. Each job gets the params the plain loop
    asks for, and optimization_results.yaml holds the loop's best trial or Pareto front."""
    overrides, sampler, directions, space, extend, objective, n_jobs = SEARCHED_CASES[case]
    jobs, results = run_searched_app(tmp_path, *overrides)
    expected = plain_optuna_loop(sampler(), directions, space, extend, objective, 16, n_jobs)
    assert [{k: v for k, v in job.items() if k in params} for job, params in zip(jobs, expected)] \
        == expected
    if len(directions) == 1:
        best = min(range(16), key=lambda i: objective(expected[i]))
        assert results["best_params"] == expected[best]
        assert results["best_value"] == pytest.approx(objective(expected[best]))
    else:
        values = [objective(p) for p in expected]
        front = {i for i, v in enumerate(values)
                 if not any(all(a <= b for a, b in zip(w, v)) and w != v for w in values)}
        assert {s["trial"] for s in results["solutions"]} == front


def test_plotting_is_imported_in_a_thread_that_a_fork_waits_for():
    """The sweeper imports the plots' modules while it waits for its training process; before it
    forks the next one, that import has ended (a fork inside an import would inherit its lock)."""
    import sys
    import threading

    from rnnexp.tuning import outputs

    outputs.plotting_preloaded()  # an earlier sweep of this process may have started one
    outputs.preload_plotting([])  # no plots asked for: nothing to import
    assert not outputs._importing
    outputs.preload_plotting(["slice"])
    outputs.plotting_preloaded()
    assert not outputs._importing
    assert "optuna.visualization.matplotlib" in sys.modules
    assert not [t for t in threading.enumerate() if t.name == "import-plotting"]


def test_study_files_are_current_only_for_the_study_that_wrote_them(tmp_path):
    """A resumed study that ran nothing keeps its files; another study of the same name with as
    many trials in each state (one run anew beside committed files) rewrites them."""
    from rnnexp.tuning.outputs import results_are_current, write_tables

    def study(values):
        s = optuna.create_study(study_name="s")
        for v in values:
            s.enqueue_trial({"x": v})
        s.optimize(lambda t: t.suggest_float("x", 0, 10), n_trials=len(values))
        return s

    first = study([3.0, 1.0, 2.0])
    write_tables(first, tmp_path)
    assert results_are_current(first, tmp_path)
    assert not results_are_current(study([3.0, 2.0, 1.5]), tmp_path)
    assert not results_are_current(first, tmp_path / "nothing here")
