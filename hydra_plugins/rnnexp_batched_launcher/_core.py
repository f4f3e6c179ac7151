"""launch(): compose every job, write its .hydra files, group compatible jobs, train each group as
one batch through rnnexp.train.train_group, write each job's run files, return one JobReturn per
job in order.

A job whose config cannot be composed or does not validate fails alone (status FAILED, the
exception as its return value); so does a batch whose engine raises, without touching the other
batches. A member that diverges or is pruned stops alone inside its batch (the training loop does
that) and completes with that status in its metrics, as a single run would.
"""
from __future__ import annotations

import gc
import importlib
import logging
import os
import sys
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Optional, Sequence

from hydra.core.utils import JobReturn, JobRuntime, JobStatus, configure_log, env_override, setup_globals
from omegaconf import DictConfig, OmegaConf

from ._compose import Job, JobComposer

log = logging.getLogger(__name__)


class ValidatingLoader:
    """The multirun's config loader, except that `load_sweep_config` for the launcher's master
    config composes the job through the launcher's JobComposer and keeps it for the launch.

    Sweepers call load_sweep_config on every job of a batch only to check that it composes; this
    raises what Hydra's compose raises (from the same override parser and override application)
    and returns the job's run config without the hydra node, which is what makes the check cheap.
    """

    def __init__(self, loader, composer: JobComposer):
        self._loader = loader
        self._composer = composer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)

    def load_sweep_config(self, master_config: DictConfig, sweep_overrides: list[str]) -> DictConfig:
        if master_config is not self._composer.master:
            return self._loader.load_sweep_config(master_config, sweep_overrides)
        prepared = self._composer.prepare(sweep_overrides, keep=True)
        if prepared.cfg is None:  # a job only Hydra itself composes: check it the usual way
            return self._loader.load_sweep_config(master_config, sweep_overrides)
        return prepared.cfg


class BatchedJobReturn(JobReturn):
    """A JobReturn whose hydra_cfg is made on first use (a DictConfig of the whole hydra node
    costs milliseconds a job; sweepers seldom read it)."""

    def __init__(self, hydra_node: Optional[dict] = None, **kwargs: Any) -> None:
        self._hydra_node = hydra_node
        self._hydra_cfg: Optional[DictConfig] = None
        super().__init__(**kwargs)

    @property  # type: ignore[override]
    def hydra_cfg(self) -> Optional[DictConfig]:
        if self._hydra_cfg is None and self._hydra_node is not None:
            self._hydra_cfg = OmegaConf.create({"hydra": self._hydra_node})
        return self._hydra_cfg

    @hydra_cfg.setter
    def hydra_cfg(self, value: Optional[DictConfig]) -> None:
        self._hydra_cfg = value


# ---------------------------------------------------------------------------- one job's pieces

def write_hydra_files(job: Job) -> None:
    """.hydra/config.yaml, hydra.yaml and overrides.yaml, as run_job writes them."""
    subdir = job.hydra.get("output_subdir")
    out = job.output_dir if subdir is None else job.output_dir / str(subdir)
    os.makedirs(out, exist_ok=True)
    if subdir is None:
        return
    for name, text in (("config.yaml", job.config_text()), ("hydra.yaml", job.hydra_text()),
                       ("overrides.yaml", job.overrides_text())):
        with open(out / name, "w", encoding="utf-8") as f:
            f.write(text)


def apply_launcher_defaults(job: Job, device: Optional[str], dtype: Optional[str]) -> None:
    """The launcher's device / dtype, for jobs whose own overrides do not set them."""
    named = {line.lstrip("+~").split("=", 1)[0] for line in job.task_overrides}
    for key, value in (("device", device), ("dtype", dtype)):
        if value is not None and key not in named:
            job.cfg[key] = value


def _returned(job: Optional[Job], overrides: Sequence[str], status: JobStatus,
              value: Any) -> JobReturn:
    ret = BatchedJobReturn(
        hydra_node=job.hydra if job is not None else None,
        overrides=list(job.task_overrides) if job is not None else list(overrides),
        cfg=job.cfg if job is not None else None, working_dir=os.getcwd(),
        task_name=JobRuntime.instance().get("name"), status=status)
    ret.return_value = value
    return ret


def _engine_class(path: Optional[str]):
    if path is None:
        return None
    module, _, name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as e:
        raise ValueError(f"hydra.launcher.engine: cannot import {path!r} ({e})") from None


class _Echo:
    """Per-job lines as rnnexp-train prints them, unless a progress bar is shown."""

    def __init__(self, progress: bool, total: int):
        self.bar = None
        if progress:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="job", file=sys.stderr, dynamic_ncols=True)

    def done(self, line: str, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)
        else:
            print(line)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# ---------------------------------------------------------------------------- the launch

def _launch_batch(chunk: list[int], jobs: list, hook_for, fail, train) -> None:
    """Make each member's hook (with its job's env_set in os.environ), then train the batch."""
    members, hooks = [], []
    for i in chunk:
        try:
            with env_override(jobs[i].env_set):  # the hook finds its trial in these variables
                hooks.append(hook_for(jobs[i].cfg))
            members.append(i)
        except Exception as e:  # noqa: BLE001
            fail(i, e)
    if members:
        train(members, hooks)


def batch_key(job: Job) -> Optional[str]:
    """Jobs with equal keys share a GroupSpec and epochs, so train_group takes them as one batch:
    the whole run config except what a member owns (seed, the optimizer's numeric arguments).
    None where an interpolation could make equal texts differ (then the config is validated and
    its GroupSpec is the key)."""
    from rnnexp.engine import BOOL_OPTIMIZER_ARGS

    c = job.config_container()
    key = repr(({k: v for k, v in c.items() if k not in ("seed", "optimizer")},
                {k: v for k, v in c["optimizer"].items() if k == "name" or k in BOOL_OPTIMIZER_ARGS}))
    return None if "${" in key else key


@contextmanager
def _gc_paused():
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@contextmanager
def _torch_threads(n: Optional[int]):
    import torch

    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _chunks(items: list, size: Optional[int]):
    size = size or len(items)
    for start in range(0, len(items), size):
        yield items[start:start + size]


@dataclass
class _Timer:
    """Where the launch spends its time, per phase (seconds)."""

    compose: float = 0.0  # the jobs' configs (also when the sweeper asked for them first)
    files: float = 0.0  # .hydra files, resuming, grouping
    training: float = 0.0  # train_group
    results: float = 0.0  # model.npz, history.csv, metrics.json

    def line(self, n: int, n_batches: int) -> str:
        per = lambda s: f"{1e3 * s / max(n, 1):.3f} ms/job"  # noqa: E731
        return (f"Batched launcher: {n} jobs in {n_batches} batches; bookkeeping "
                f"{per(self.compose + self.files)} (compose {per(self.compose)}, .hydra files "
                f"{per(self.files)}), training {per(self.training)} (train_group), run files "
                f"{per(self.results)}")


def launch_batched(launcher, job_overrides: Sequence[Sequence[str]],
                   initial_job_idx: int) -> list[JobReturn]:
    from rnnexp.config import validate
    from rnnexp.results import read_done
    from rnnexp.train import group_spec, save_result, summary_line, train_group
    from rnnexp.tuning.hooks import hook_for

    setup_globals()
    config = launcher.config
    configure_log(config.hydra.hydra_logging, config.hydra.verbose)
    engine_cls = _engine_class(launcher.engine)
    n = len(job_overrides)
    returns: list[Optional[JobReturn]] = [None] * n
    jobs: list[Optional[Job]] = [None] * n
    groups: dict[Any, list[int]] = defaultdict(list)
    echo = _Echo(launcher.progress, n)
    timer = launcher.timer = _Timer()

    def fail(i: int, err: Exception) -> None:
        returns[i] = _returned(jobs[i], job_overrides[i], JobStatus.FAILED, err)
        echo.done(f"#{initial_job_idx + i} failed: {err}")

    def complete(i: int, metrics: dict, line: str) -> None:
        returns[i] = _returned(jobs[i], job_overrides[i], JobStatus.COMPLETED, metrics)
        echo.done(line)

    def invalid(i: int) -> Optional[Exception]:
        try:
            validate(jobs[i].cfg)
            return None
        except Exception as e:  # noqa: BLE001
            return e

    def train(members: list[int], hooks: list) -> None:
        start = time.perf_counter()
        try:
            results = train_group([jobs[i].cfg for i in members], hooks, engine_cls=engine_cls)
        except Exception as e:  # noqa: BLE001 - the batch fails, the other batches go on
            timer.training += time.perf_counter() - start
            errors = [invalid(i) for i in members] if len(members) > 1 else [None]
            if any(errors):  # train_group validates first: fail the invalid, train the rest
                for i, err in zip(members, errors):
                    if err is not None:
                        fail(i, err)
                keep = [k for k, err in enumerate(errors) if err is None]
                if keep:
                    train([members[k] for k in keep], [hooks[k] for k in keep])
            else:
                for i in members:
                    fail(i, e)
            return
        timer.training += time.perf_counter() - start
        start = time.perf_counter()
        for i, result in zip(members, results):
            try:
                save_result(jobs[i].output_dir, result, jobs[i].cfg)
            except Exception as e:  # noqa: BLE001
                fail(i, e)
                continue
            complete(i, result.metrics, summary_line(result.metrics))
        timer.results += time.perf_counter() - start

    def prepare_job(i: int, overrides: Sequence[str]) -> None:
        try:
            job = jobs[i] = launcher.composer.job(overrides, initial_job_idx + i)
        except Exception as e:  # noqa: BLE001 - a bad job fails alone
            fail(i, e)
            return
        start = time.perf_counter()
        try:
            apply_launcher_defaults(job, launcher.device, launcher.dtype)
            write_hydra_files(job)
            cfg = job.cfg
            if cfg.train.skip_done and (done := read_done(job.output_dir)) is not None:
                complete(i, done, f"{job.output_dir}: done before, skipped")
            else:
                key = batch_key(job)
                if key is None:
                    key = (group_spec(cfg, validate(cfg)), int(cfg.train.epochs))
                groups[key].append(i)
        except Exception as e:  # noqa: BLE001 - a bad job fails alone
            fail(i, e)
        timer.files += time.perf_counter() - start

    with _gc_paused():  # thousands of small configs: the cycle collector would rescan them often
        for i, overrides in enumerate(job_overrides):
            prepare_job(i, overrides)

    batches = [chunk for members in groups.values() for chunk in _chunks(members, launcher.max_batch)]
    log.info(f"Batched launcher: {n} jobs in {len(batches)} batches, sweep output dir: "
             f"{config.hydra.sweep.dir}")
    with _torch_threads(launcher.threads):
        for chunk in batches:
            _launch_batch(chunk, jobs, hook_for, fail, train)
    echo.close()
    launcher.composer.forget_pending()
    timer.compose, launcher.composer.seconds = launcher.composer.seconds, 0.0
    log.info(timer.line(n, len(batches)))
    return returns  # type: ignore[return-value]
