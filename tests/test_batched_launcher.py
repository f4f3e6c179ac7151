"""hydra/launcher=batched: per-job configs and files against Hydra's own, grouping, failures alone,
resuming, hooks; the CLI-level checks run rnnexp-train in real subprocesses."""
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.utils import JobStatus
from hydra.types import HydraContext, RunMode
from hypothesis import given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf, open_dict

from conftest import CONF, run_cli
from hydra_plugins.rnnexp_batched_launcher import _yaml
from hydra_plugins.rnnexp_batched_launcher._compose import JobComposer
from hydra_plugins.rnnexp_batched_launcher._options import LauncherOptionError
from hydra_plugins.rnnexp_batched_launcher.batched_launcher import BatchedLauncher
from rnnexp import checkpoint

TESTS = Path(__file__).resolve().parent
ENV = {"PYTHONPATH": str(TESTS)}


# ------------------------------------------------------------------------------- YAML text

_scalars = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10)
            | st.text(alphabet="ab_/.,=+-:#0e ", min_size=60, max_size=120)
            | st.sampled_from(["1", "true", "No", "null", "~", "1e5", "nan", ".inf", "a: b", "#x",
                               "-", "'q'", "${x}", "a=b,c=d", "/tmp/x", "é", "x\ny", "\x07"]))
_keys = st.text(max_size=8) | st.integers() | st.sampled_from(["_target_", "hydra/env", "1", "y"])
_trees = st.recursive(_scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(_keys, c, max_size=3),
                      max_leaves=12)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(_keys, _trees, max_size=4) | st.lists(_trees, max_size=3))
def test_yaml_text_is_omegaconfs(obj):
    assert _yaml.to_yaml_exact(obj) == _yaml.dump(obj)


@settings(max_examples=300, deadline=None)
@given(_keys, _trees, st.sampled_from([0, 2, 4]))
def test_one_mapping_entry_is_its_lines_of_the_whole_document(key, value, indent):
    nested = {key: value}
    for _ in range(indent // 2):
        nested = {"w": nested}
    assert _yaml.dump(nested).split("\n", indent // 2)[-1] == _yaml.mapping_entry(key, value, indent)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_keys, _trees, min_size=1, max_size=4), _trees, st.data())
def test_yaml_text_sharing_entries_with_a_base_is_omegaconfs(base, value, data):
    """A container that shares all but one path with its base (as a leaf-path job's config does):
    its text, with the shared entries' text cached per base, is PyYAML's."""
    from hydra_plugins.rnnexp_batched_launcher._compose import _with

    path, node = [], base
    while isinstance(node, dict) and node and (not path or data.draw(st.booleans())):
        path.append(data.draw(st.sampled_from(list(node))))
        node = node[path[-1]]
    changed, cache = _with(base, tuple(path), value), {}
    assert _yaml.to_yaml_sharing(changed, base, cache) == _yaml.dump(changed)
    assert _yaml.to_yaml_sharing(base, base, cache) == _yaml.dump(base)


def test_unusual_scalars_fall_back_to_pyyaml():
    for text in ("a b " * 30, "x\ny", "\x07", "true", "1.5"):
        assert _yaml.to_yaml_exact({"k": text}) == _yaml.dump({"k": text})
    with pytest.raises(_yaml.NotPlain):
        _yaml.to_yaml({"k": "a b"})


# ------------------------------------------------------------------------------- composing in-process

@pytest.fixture
def hydra_loader():
    """A config loader over conf/ and a multirun master config, as rnnexp-train -m makes them."""
    from rnnexp.config import register_configs

    register_configs()

    def _make(tmp_path, *hydra_overrides):
        GlobalHydra.instance().clear()
        initialize_config_dir(config_dir=str(CONF), version_base="1.3")
        loader = GlobalHydra.instance().config_loader()
        master = loader.load_configuration(
            "config", [f"hydra.sweep.dir={tmp_path / 'sweep'}", "hydra/launcher=batched",
                       *hydra_overrides], RunMode.MULTIRUN)
        return loader, master

    yield _make
    GlobalHydra.instance().clear()


JOBS = [
    ["optimizer=adam", "optimizer.lr=0.1", "seed=3", "train.epochs=20"],
    ["optimizer=adam", "optimizer.betas=[0.8,0.99]", "optimizer.amsgrad=true"],
    ["model=numpy_rnn", "optimizer=sgd", "model.clip=null", "model.hidden_size=7"],
    ["+extra.note=hello", "+extra.n=2", "~extra.n", "word_file=null", "optimizer.lr=1"],
    ["word='a b c'", "seed=2", "++optimizer.eps=1e-18"],
    ["optimizer.lr=0.5", "++hydra.job.env_set.RNNEXP_TRIAL='7'", "+hydra.job.env_set.OTHER=3"],
    ["optimizer.lr=0.5", "hydra.job.chdir=true"],  # composed by Hydra in full
    ["seed=4", "++hydra.sweep.subdir=12", "++hydra.job.env_set.RNNEXP_TRIAL='3'"],  # the Optuna sweeper's
    ["seed=5", "hydra.sweep.subdir=trial_${hydra.job.num}"],
    ["optimizer.lr=${optimizer.eps}", "seed=1"],
    ["model.hidden_size=3", "optimizer=rmsprop", "optimizer.centered=true"],
]


@pytest.mark.parametrize("hydra_overrides", [
    [],
    ["hydra.sweep.subdir=${hydra.job.override_dirname}",
     "hydra.job.config.override_dirname.exclude_keys=[seed]",
     "hydra.job.config.override_dirname.kv_sep=_", "hydra.job.config.override_dirname.item_sep=/"],
    ["hydra.sweep.subdir=job_${hydra.job.id}_of_${hydra.job.name}"],  # composed by Hydra in full
])
def test_composed_jobs_equal_hydras(tmp_path, hydra_loader, hydra_overrides):
    """Config, hydra node, output dir and the three .hydra files of each job are exactly what the
    basic launcher's load_sweep_config + run_job give."""
    loader, master = hydra_loader(tmp_path, *hydra_overrides)
    composer = JobComposer(loader, master)
    for idx, overrides in enumerate(JOBS, start=5):
        fast = composer.job(overrides, idx)
        full = composer._compose_in_full(overrides, idx)
        composed_in_full = ("hydra.job.chdir=true" in overrides or
                            (any("${hydra.job.name}" in o for o in hydra_overrides) and
                             not any("hydra.sweep.subdir=" in o for o in overrides)) or
                            any("${" in o for o in overrides if not o.lstrip("+").startswith("hydra")))
        assert (fast.base is None) == composed_in_full, overrides  # the fast path was taken
        assert fast.output_dir == full.output_dir
        assert fast.hydra == full.hydra
        assert fast.env_set == full.env_set
        assert fast.task_overrides == full.task_overrides == [o for o in overrides
                                                              if not o.startswith(("hydra", "+hydra", "++hydra"))]
        assert OmegaConf.to_container(fast.cfg) == OmegaConf.to_container(full.cfg)
        assert OmegaConf.get_type(fast.cfg.optimizer) is OmegaConf.get_type(full.cfg.optimizer)
        assert fast.config_text() == OmegaConf.to_yaml(full.cfg)
        assert fast.overrides_text() == OmegaConf.to_yaml(OmegaConf.create(full.task_overrides))
        assert fast.hydra_text() == full.hydra_text() == OmegaConf.to_yaml({"hydra": full.hydra})


def test_bad_overrides_raise_what_hydra_raises(tmp_path, hydra_loader):
    loader, master = hydra_loader(tmp_path)
    composer = JobComposer(loader, master)
    for overrides in (["optimizer.lrr=0.1"], ["model.hidden_size=abc"], ["+seed=1"], ["~nothing"]):
        with pytest.raises(Exception) as ours:
            composer.job(overrides, 0)
        with pytest.raises(Exception) as hydras:
            loader.load_sweep_config(master, overrides)
        assert type(ours.value) is type(hydras.value)
        assert str(ours.value) == str(hydras.value)


def test_typed_values_are_still_checked(tmp_path, hydra_loader):
    loader, master = hydra_loader(tmp_path)
    job = JobComposer(loader, master).job(["optimizer.lr=1", "model.hidden_size=4"], 0)
    assert job.cfg.optimizer.lr == 1.0 and isinstance(job.cfg.optimizer.lr, float)
    with pytest.raises(Exception, match="hidden_size"):
        job.cfg.model.hidden_size = "many"


LEAF_JOBS = [  # key=value overrides of keys the base has: no DictConfig per job
    ["optimizer.lr=1", "seed=3", "train.epochs=20", "train.checkpoint=false"],
    ["optimizer=adam", "optimizer.betas.0=0.5", "optimizer.betas.1=1", "optimizer.lr=2e-05"],
    ["optimizer=adam", "optimizer.betas.1=0.25", "optimizer.eps=1.5e-12", "optimizer.lr=3"],
    ["optimizer=adam", "optimizer.betas=[0.8,0.99]", "optimizer.amsgrad=true", "model.hidden_size=4"],
    ["model=numpy_rnn", "optimizer=sgd", "model.clip=null", "converge.loss_below=1"],
    ["word='a b c'", "dtype=float32", "++hydra.job.env_set.RNNEXP_TRIAL='7'"],
]
TYPED_JOBS = [  # everything else: a typed copy of the base with Hydra's override application
    ["seed=1", "seed=2"],  # the same key twice
    ["+extra.note=hello", "optimizer.lr=0.5"],
    ["+extra.n=2", "~extra.n", "seed=4"],
    ["++optimizer.eps=1e-18"],
    ["optimizer.lr=${optimizer.eps}"],
]


@pytest.mark.parametrize("defaults", [{}, {"dtype": "float32", "device": "cpu"}])
def test_leaf_path_configs_equal_the_typed_ones(tmp_path, hydra_loader, defaults):
    """The plain container a leaf-path job is built from, its config.yaml text and the Plain tree
    it trains from equal what the typed DictConfig (Hydra's own override application) gives; the
    launcher's defaults apply where the job's own overrides leave the key alone."""
    from rnnexp.config import plain

    loader, master = hydra_loader(tmp_path)
    composer = JobComposer(loader, master, defaults=defaults)
    for idx, overrides in enumerate(LEAF_JOBS + TYPED_JOBS):
        job = composer.job(overrides, idx)
        assert job.leaf_path == (overrides in LEAF_JOBS), overrides
        typed = job.cfg  # made on demand for a leaf-path job
        assert repr(job.config_container()) == repr(OmegaConf.to_container(typed)), overrides
        assert job.config_text() == OmegaConf.to_yaml(typed), overrides
        if "${" not in repr(job.config_container()):
            assert repr(job.run_cfg) == repr(plain(typed)), overrides
        own = "dtype=float32" in overrides
        assert typed.dtype == ("float32" if own or defaults else "float64"), overrides
        checked = composer.loader.load_sweep_config(master, overrides)  # the sweeper's check (Hydra)
        via_launcher = JobComposer(loader, master).prepare(overrides)
        ours = via_launcher.cfg if via_launcher.cfg is not None else via_launcher.container
        with open_dict(checked):
            del checked["hydra"]
        assert repr(OmegaConf.to_container(checked)) == repr(
            ours if isinstance(ours, dict) else OmegaConf.to_container(ours)), overrides

def test_many_values_of_one_key_equal_the_typed_configs(tmp_path, hydra_loader):
    """After a key took one value of a type as a leaf, its node converts the next ones (a study's
    thousands of learning rates): each job still equals Hydra's own override application, and a
    value the node refuses still raises Hydra's error."""
    import random

    loader, master = hydra_loader(tmp_path)
    composer = JobComposer(loader, master)
    rng = random.Random(0)
    lines = [[f"optimizer.lr={rng.choice([rng.random(), rng.randint(0, 9), 10 ** rng.uniform(-9, 1)])!r}",
              f"model.hidden_size={rng.randint(1, 9)}", f"seed={rng.randint(0, 99)}",
              f"train.checkpoint={rng.choice(['true', 'false'])}"] for _ in range(40)]
    lines += [["optimizer=adam", f"optimizer.betas.0={rng.random()!r}", f"optimizer.betas.1={rng.randint(0, 1)}"]
              for _ in range(20)]
    for idx, overrides in enumerate(lines):
        job = composer.job(overrides, idx)
        assert job.leaf_path, overrides
        assert repr(job.config_container()) == repr(OmegaConf.to_container(job.cfg)), overrides
        checked = loader.load_sweep_config(master, overrides)
        with open_dict(checked):
            del checked["hydra"]
        assert repr(job.config_container()) == repr(OmegaConf.to_container(checked)), overrides
    for bad in (["model.hidden_size=1.5"], ["train.checkpoint=2.5"]):
        with pytest.raises(Exception) as ours:
            composer.job(bad, 0)
        with pytest.raises(Exception) as hydras:
            loader.load_sweep_config(master, bad)
        assert type(ours.value) is type(hydras.value) and str(ours.value) == str(hydras.value)


@pytest.mark.parametrize("key", ["a", "optimizer.lr", "optimizer.betas.0", "x_y.z-1", "a.01", "a.$b",
                                 "0.a", "A1"])
def test_simple_override_lines_parse_as_hydras_parser(key):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from hydra_plugins.rnnexp_batched_launcher._compose import _simple_override

    parser = OverridesParser.create()
    values = ["0", "1", "-3", "+7", "007", "1_000", "0.5", ".5", "5.", "-.5e-3", "1e5", "1E+05",
              "01.5", "1.5e", "inf", "nan", "true", "False", "TRUE", "null", "abc", "1.2.3", "0x10",
              "1e-05", repr(0.1 + 0.2), repr(1e-300), repr(-123456789.0), "--1", "1_0.5", "'1'"]
    taken = 0
    for value in values:
        line = f"{key}={value}"
        fast = _simple_override(line)
        try:
            slow = parser.parse_overrides([line])[0]
        except Exception:  # noqa: BLE001 - Hydra refuses it: so must the fast path
            assert fast is None, line
            continue
        if fast is not None:
            taken += 1
            assert fast == slow and type(fast.value()) is type(slow.value()), line
    assert taken >= (15 if key in ("a", "optimizer.lr", "optimizer.betas.0", "x_y.z-1", "A1") else 0)

# ------------------------------------------------------------------------------- launching in-process

def _launcher(tmp_path, hydra_loader, **options):
    from hydra._internal.callbacks import Callbacks

    loader, master = hydra_loader(tmp_path)
    launcher = BatchedLauncher(engine=options.pop("engine", None), **options)
    launcher.setup(hydra_context=HydraContext(config_loader=loader, callbacks=Callbacks()),
                   task_function=lambda cfg: None, config=master)
    return launcher


def test_launch_returns_one_result_per_job_in_order(tmp_path, hydra_loader):
    launcher = _launcher(tmp_path, hydra_loader)
    jobs = [["optimizer.lr=0.1", "seed=1", "train.epochs=5"],
            ["optimizer.lrr=0.1", "train.epochs=5"],  # does not compose
            ["optimizer.lr=-1", "train.epochs=5"],  # does not validate
            ["optimizer.lr=0.2", "seed=0", "train.epochs=5"]]
    returns = launcher.launch(jobs, initial_job_idx=10)
    assert [r.status for r in returns] == [JobStatus.COMPLETED, JobStatus.FAILED,
                                          JobStatus.FAILED, JobStatus.COMPLETED]
    assert "optimizer.lrr" in str(returns[1]._return_value)
    assert "optimizer.lr" in str(returns[2]._return_value)
    sweep = tmp_path / "sweep"
    for k in (0, 3):
        metrics = json.loads((sweep / str(10 + k) / "metrics.json").read_text())
        assert returns[k].return_value == metrics
        assert OmegaConf.select(returns[k].hydra_cfg, "hydra.runtime.output_dir") == str(sweep / str(10 + k))
        assert returns[k].overrides == jobs[k]
    assert returns[0].return_value["optimizer_args"]["lr"] == 0.1
    assert (sweep / "12" / ".hydra" / "config.yaml").exists() and not (sweep / "12" / "metrics.json").exists()
    assert not (sweep / "11").exists()


def test_groups_split_by_what_members_share_and_by_max_batch(tmp_path, hydra_loader, monkeypatch):
    import rnnexp.train

    sizes = []
    real = rnnexp.train.train_group

    def spy(cfgs, hooks=None, engine_cls=None):
        sizes.append((cfgs[0].model.hidden_size, tuple(c.optimizer.name for c in cfgs), cfgs[0].train.epochs))
        return real(cfgs, hooks, engine_cls)

    monkeypatch.setattr(rnnexp.train, "train_group", spy)
    launcher = _launcher(tmp_path, hydra_loader, max_batch=2)
    jobs = [[f"optimizer={o}", f"model.hidden_size={h}", f"seed={s}", "train.epochs=3"]
            for o in ("adam", "rmsprop") for h in (3, 4) for s in range(3)]
    jobs.append(["optimizer=adam", "model.hidden_size=3", "seed=9", "train.epochs=4"])
    returns = launcher.launch(jobs, 0)
    assert all(r.status == JobStatus.COMPLETED for r in returns)
    # optimizers share a batch (each a run of members); hidden size and epochs split batches
    assert sorted(sizes) == sorted([(h, o, 3) for h in (3, 4) for o in (
        ("adam", "adam"), ("adam", "rmsprop"), ("rmsprop", "rmsprop"))] + [(3, ("adam",), 4)])


def test_hooks_see_their_jobs_env_set_and_can_prune(tmp_path, hydra_loader, monkeypatch):
    import rnnexp.tuning.hooks

    seen = []

    class StopAt:
        def __init__(self, epoch):
            self.epoch = epoch

        def report(self, epoch, loss):
            return epoch >= self.epoch

    def hook_for(cfg, env=None):
        seen.append(os.environ.get("TRIAL_AT"))
        return StopAt(int(os.environ["TRIAL_AT"])) if "TRIAL_AT" in os.environ else None

    monkeypatch.setattr(rnnexp.tuning.hooks, "hook_for", hook_for)
    monkeypatch.delenv("TRIAL_AT", raising=False)
    launcher = _launcher(tmp_path, hydra_loader)
    returns = launcher.launch([["seed=0", "train.epochs=8", "++hydra.job.env_set.TRIAL_AT=3"],
                               ["seed=1", "train.epochs=8"],
                               ["seed=2", "train.epochs=8", "++hydra.job.env_set.TRIAL_AT=5"]], 0)
    assert seen == ["3", None, "5"] and "TRIAL_AT" not in os.environ
    metrics = [r.return_value for r in returns]
    assert [(m["status"], m["epochs_run"]) for m in metrics] == [("pruned", 3), ("completed", 8),
                                                                  ("pruned", 5)]


def test_torch_threads_are_set_while_training_and_restored(tmp_path, hydra_loader, monkeypatch):
    import torch

    import rnnexp.train

    seen, real = [], rnnexp.train.train_group

    def spy(cfgs, hooks=None, engine_cls=None):
        seen.append(torch.get_num_threads())
        return real(cfgs, hooks, engine_cls)

    monkeypatch.setattr(rnnexp.train, "train_group", spy)
    before = torch.get_num_threads()
    _launcher(tmp_path, hydra_loader, threads=1).launch([["train.epochs=2"]], 0)
    assert seen == [1] and torch.get_num_threads() == before


def test_launcher_device_and_dtype_apply_where_the_job_sets_none(tmp_path, hydra_loader):
    launcher = _launcher(tmp_path, hydra_loader, dtype="float32", device="cpu")
    returns = launcher.launch([["train.epochs=2"], ["train.epochs=2", "dtype=float64"]], 0)
    assert [r.return_value["dtype"] for r in returns] == ["float32", "float64"]
    assert "dtype: float32" in (tmp_path / "sweep" / "0" / ".hydra" / "config.yaml").read_text()


def test_returns_keep_little_and_make_cfg_and_hydra_cfg_on_demand(tmp_path, hydra_loader):
    launcher = _launcher(tmp_path, hydra_loader, dtype="float32")
    jobs = [["optimizer.lr=0.1", "seed=1", "train.epochs=3"], ["optimizer.lrr=1", "train.epochs=3"]]
    done, bad = launcher.launch(jobs, initial_job_idx=5)
    assert not any(OmegaConf.is_config(v) for v in vars(done).values())  # no config is held
    assert [v for v in vars(done).values() if isinstance(v, dict)] == [done.return_value]
    assert done.overrides == jobs[0] and done.status == JobStatus.COMPLETED
    job = launcher.composer.job(jobs[0], 5)
    assert OmegaConf.to_container(done.cfg) == OmegaConf.to_container(job.cfg)
    assert done.cfg.dtype == "float32"
    assert OmegaConf.get_type(done.cfg.optimizer) is OmegaConf.get_type(job.cfg.optimizer)
    assert OmegaConf.to_container(done.hydra_cfg) == {"hydra": job.hydra}
    assert done.hydra_cfg.hydra.job.num == 5
    assert done.hydra_cfg.hydra.runtime.output_dir == str(tmp_path / "sweep" / "5")
    assert bad.status == JobStatus.FAILED and bad.cfg is None and bad.hydra_cfg is None
    assert bad.overrides == jobs[1]


def test_jobs_are_composed_and_dropped_batch_by_batch(tmp_path, hydra_loader, monkeypatch):
    """No per-job structure for all jobs at once: while a batch trains, only its own jobs exist."""
    import gc

    import rnnexp.train
    from hydra_plugins.rnnexp_batched_launcher._compose import Job

    live, real = [], rnnexp.train.train_group

    def spy(cfgs, hooks=None, engine_cls=None):
        live.append(sum(type(o) is Job for o in gc.get_objects()))
        return real(cfgs, hooks, engine_cls)

    monkeypatch.setattr(rnnexp.train, "train_group", spy)
    launcher = _launcher(tmp_path, hydra_loader, max_batch=2)
    gc.collect()  # jobs of earlier tests that failed jobs' tracebacks kept in reference cycles
    jobs = [[f"seed={s}", "train.epochs=2"] for s in range(7)]
    returns = launcher.launch(jobs, 0)
    assert all(r.status == JobStatus.COMPLETED for r in returns)
    assert len(live) == 4 and max(live) <= 2


def test_failed_jobs_keep_their_exception_but_not_their_batch(tmp_path, hydra_loader, monkeypatch):
    """A failed job's return holds the exception, whose traceback refers to the launcher's frames:
    those must not keep the batch's jobs alive until the sweep ends."""
    import gc

    import rnnexp.train
    from hydra_plugins.rnnexp_batched_launcher._compose import Job

    def broken(cfgs, hooks=None, engine_cls=None):
        raise RuntimeError("engine broke")

    monkeypatch.setattr(rnnexp.train, "train_group", broken)
    launcher = _launcher(tmp_path, hydra_loader, max_batch=3)
    returns = launcher.launch([[f"seed={s}", "train.epochs=2"] for s in range(7)], 0)
    assert [str(r._return_value) for r in returns] == ["engine broke"] * 7
    gc.collect()
    assert sum(type(o) is Job for o in gc.get_objects()) == 0


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
                    max_leaves=10))
def test_metrics_json_text_is_json_dumps(obj):
    from hydra_plugins.rnnexp_batched_launcher._core import json_text

    assert json_text(obj) == json.dumps(obj, indent=1, ensure_ascii=False)


def test_run_files_are_what_write_run_writes(tmp_path):
    """history.csv and metrics.json as the launcher writes them, byte for byte rnnexp.results'."""
    from types import SimpleNamespace

    from hydra_plugins.rnnexp_batched_launcher._core import write_run_files
    from rnnexp.results import write_run

    rng = np.random.default_rng(0)
    for n in (0, 1, 7, 100):
        loss = rng.standard_normal(n) * 10.0 ** rng.integers(-12, 12, n)
        loss[::5] = np.nan
        spelled = rng.random(n) > 0.5
        metrics = {"word": "é\"x\n", "final_loss": float("nan"), "min_loss": np.float64(0.5),
                   "args": {"betas": (0.9, 0.999), "n": np.int64(3)}, "empty": {}, "none": None}
        ours, theirs = tmp_path / f"ours{n}", tmp_path / f"theirs{n}"
        job = SimpleNamespace(dir=str(ours), run_cfg=SimpleNamespace(train=SimpleNamespace(checkpoint=False)))
        write_run_files(job, SimpleNamespace(metrics=metrics, loss=loss, spelled=spelled))
        write_run(theirs, metrics, loss, spelled)
        assert sorted(p.name for p in ours.iterdir()) == sorted(p.name for p in theirs.iterdir())
        for p in theirs.iterdir():
            assert (ours / p.name).read_bytes() == p.read_bytes(), (n, p.name)


def test_options_are_checked_with_one_line_naming_them():
    for kwargs, key in (({"max_batch": 0}, "max_batch"), ({"device": "tpu"}, "device"),
                        ({"dtype": "float16"}, "dtype"), ({"threads": 0}, "threads")):
        with pytest.raises(LauncherOptionError, match=f"hydra.launcher.{key}"):
            BatchedLauncher(**kwargs)


# ------------------------------------------------------------------------ the real CLI (slow)

def _sweep(tmp_path, name, *args, launcher="batched"):
    extra = ["hydra/launcher=batched"] if launcher == "batched" else []
    out = tmp_path / name
    proc = run_cli("rnnexp-train", "-m", *extra, *args, f"hydra.sweep.dir={out}", cwd=tmp_path, env=ENV)
    return out, proc


def _normalized_hydra(path: Path, sweep: Path) -> dict:
    """hydra.yaml without what differs between two launchers writing into two dirs."""
    h = yaml.safe_load(path.read_text())["hydra"]
    h["sweep"].pop("dir")
    h.pop("launcher")
    h["runtime"]["choices"].pop("hydra/launcher")
    h["runtime"]["output_dir"] = str(Path(h["runtime"]["output_dir"]).relative_to(sweep))
    h["overrides"]["hydra"] = [o for o in h["overrides"]["hydra"]
                               if not o.startswith(("hydra.sweep.dir=", "hydra/launcher=", "hydra.launcher."))]
    return h


def assert_same_runs(a: Path, b: Path, tol: float = 1e-9) -> None:
    jobs = sorted(p.name for p in a.iterdir() if p.is_dir())
    assert jobs == sorted(p.name for p in b.iterdir() if p.is_dir())
    for job in jobs:
        ja, jb = a / job, b / job
        for name in ("config.yaml", "overrides.yaml"):
            assert (ja / ".hydra" / name).read_text() == (jb / ".hydra" / name).read_text(), (job, name)
        assert _normalized_hydra(ja / ".hydra" / "hydra.yaml", a) == _normalized_hydra(jb / ".hydra" / "hydra.yaml", b)
        ma, mb = (json.loads((j / "metrics.json").read_text()) for j in (ja, jb))
        ma.pop("wall_time_s"), mb.pop("wall_time_s")
        for key in ma:
            if isinstance(ma[key], float):
                assert ma[key] == pytest.approx(mb[key], rel=tol, abs=tol), (job, key)
            else:
                assert ma[key] == mb[key], (job, key)
        ha, hb = (np.genfromtxt(j / "history.csv", delimiter=",", names=True) for j in (ja, jb))
        assert np.allclose(ha["loss"], hb["loss"], rtol=0, atol=tol) and np.array_equal(ha["spelled"], hb["spelled"])
        (pa, va, _), (pb, vb, _) = checkpoint.load(ja), checkpoint.load(jb)
        assert va == vb and pa.keys() == pb.keys()
        # weights: RMSprop's division by sqrt(v) + eps amplifies last-bit differences between a
        # stacked engine and torch.optim to ~1e-8 over 20 epochs; the losses still agree to 1e-9
        assert all(np.allclose(pa[k], pb[k], rtol=0, atol=1e-6) for k in pa)


GRIDS = {
    "torch": ["optimizer=adam,rmsprop", "optimizer.lr=0.01,0.1", "seed=0,1", "train.epochs=20"],
    "numpy": ["model=numpy_rnn", "model.hidden_size=8", "optimizer=sgd,adagrad",
              "optimizer.lr=0.05,0.2", "seed=0,1", "train.epochs=15"],
    # the gated cells as a swept choice: one stacked batch per cell
    "cells": ["model=torch_gru,torch_lstm", "model.num_layers=1,2", "optimizer=sgd,adagrad,adam,rmsprop",
              "optimizer.lr=0.01,0.1", "train.epochs=20"],
}
BATCHES = {"torch": "8 jobs in 1 batches", "numpy": "8 jobs in 1 batches",
           "cells": "32 jobs in 4 batches"}


@pytest.mark.slow
@pytest.mark.parametrize("model", list(GRIDS))
def test_batched_sweep_writes_what_the_basic_launcher_writes(tmp_path, model):
    batched, proc = _sweep(tmp_path, "batched", *GRIDS[model])
    assert proc.returncode == 0, proc.stderr
    assert BATCHES[model] in proc.stdout  # every optimizer of a model in one stacked batch
    basic, proc = _sweep(tmp_path, "basic", *GRIDS[model], launcher="basic")
    assert proc.returncode == 0, proc.stderr
    assert_same_runs(batched, basic)


@pytest.mark.slow
def test_mixed_groups_and_override_dirname_subdirs(tmp_path):
    args = ["model.hidden_size=3,6", "optimizer.lr=0.05,0.3", "train.epochs=10",
            "hydra.sweep.subdir=${hydra.job.override_dirname}"]
    batched, proc = _sweep(tmp_path, "batched", *args)
    assert proc.returncode == 0, proc.stderr
    assert "4 jobs in 2 batches" in proc.stdout
    assert (batched / "model.hidden_size=6,optimizer.lr=0.3,train.epochs=10" / "metrics.json").exists()
    basic, proc = _sweep(tmp_path, "basic", *args, launcher="basic")
    assert proc.returncode == 0, proc.stderr
    assert_same_runs(batched, basic)


@pytest.mark.slow
def test_an_invalid_job_fails_alone(tmp_path):
    out, proc = _sweep(tmp_path, "s", "optimizer.lr=0.1,-1,0.2", "train.epochs=5")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "rnnexp-train: error: optimizer.lr: must be a finite number > 0, got -1.0"]
    assert (out / "0" / "metrics.json").exists() and (out / "2" / "metrics.json").exists()
    assert (out / "1" / ".hydra" / "config.yaml").exists() and not (out / "1" / "metrics.json").exists()


@pytest.mark.slow
def test_skip_done_resumes_a_sweep(tmp_path):
    args = ["optimizer.lr=0.1,0.2", "seed=0,1", "train.epochs=5", "train.skip_done=true"]
    out, proc = _sweep(tmp_path, "s", *args)
    assert proc.returncode == 0, proc.stderr
    before = {p: p.read_text() for p in out.glob("*/metrics.json")}
    (out / "2" / "metrics.json").unlink()
    _, proc = _sweep(tmp_path, "s", *args)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("done before, skipped") == 3
    assert "1 batches" in proc.stdout and "3 jobs" not in proc.stdout
    after = {p: p.read_text() for p in out.glob("*/metrics.json")}
    assert after.keys() == before.keys()
    for p in before:
        if p.parent.name != "2":
            assert after[p] == before[p]
    assert json.loads(after[out / "2" / "metrics.json"])["seed"] == 0


@pytest.mark.slow
def test_a_diverging_member_fails_alone(tmp_path):
    out, proc = _sweep(tmp_path, "s", "model.nonlinearity=relu", "optimizer=sgd",
                       "optimizer.lr=0.1,1e30,0.05", "train.epochs=10")
    assert proc.returncode == 0, proc.stderr
    assert "3 jobs in 1 batches" in proc.stdout
    metrics = [json.loads((out / str(k) / "metrics.json").read_text()) for k in range(3)]
    assert [m["status"] for m in metrics] == ["completed", "diverged", "completed"]
    assert metrics[1]["epochs_run"] < 10 and metrics[0]["epochs_run"] == metrics[2]["epochs_run"] == 10


STUDY = ["hydra/sweeper=optuna", "hydra/sweeper/sampler=random", "hydra.sweeper.sampler.seed=0",
         "hydra.sweeper.n_trials=6", "hydra.sweeper.n_jobs=3", "hydra.sweeper.study_name=s",
         "optimizer.lr=tag(log, interval(0.001, 0.03))", "optimizer.alpha=interval(0.9, 0.99)",
         "hydra.sweeper.seeds=[0,1]", "train.epochs=20"]


@pytest.mark.slow
def test_optuna_study_with_the_batched_launcher_matches_the_basic_one(tmp_path):
    """Same seeded study through both launchers: same trials, values and job files."""
    dirs, out = {}, {}
    for launcher in ("batched", "basic"):
        dirs[launcher], proc = _sweep(tmp_path, launcher, *STUDY,
                                      f"hydra.sweeper.storage={tmp_path / launcher}.log",
                                      launcher=launcher)
        assert proc.returncode == 0, proc.stderr
        out[launcher] = proc.stdout + proc.stderr
    # random search: the two batches of 3 trials x 2 seeds go to the batched launcher as one launch
    assert out["batched"].count("Batched launcher: 12 jobs in 1 batches;") == 1
    trials = {k: pd.read_csv(d / "trials.csv") for k, d in dirs.items()}
    a, b = trials["batched"], trials["basic"]
    assert len(a) == len(b) == 6 and (a.state == "COMPLETE").all() and (b.state == "COMPLETE").all()
    for col in ("value", "params_optimizer.lr", "params_optimizer.alpha"):
        assert np.allclose(a[col], b[col], rtol=1e-9, atol=0), col
    jobs = lambda d: sorted(p for p in d.iterdir() if p.is_dir())  # noqa: E731
    assert [p.name for p in jobs(dirs["batched"])] == [p.name for p in jobs(dirs["basic"])]
    assert len(jobs(dirs["batched"])) == 12  # 6 trials x 2 seeds
    for ja, jb in zip(jobs(dirs["batched"]), jobs(dirs["basic"])):
        ma, mb = (json.loads((j / "metrics.json").read_text()) for j in (ja, jb))
        assert ma["seed"] == mb["seed"] and ma["optimizer_args"] == mb["optimizer_args"]
        assert ma["final_loss"] == pytest.approx(mb["final_loss"], rel=1e-9)
