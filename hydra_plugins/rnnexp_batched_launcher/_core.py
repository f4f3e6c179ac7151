"""launch(): group compatible jobs, and for each batch compose its jobs, write their .hydra files,
train them as one batch through rnnexp.train.train_group, write each job's run files and keep one
small JobReturn per job; return them in order.

Memory stays flat in the number of jobs: a first pass composes each job only to find its batch (or
to resume it) and keeps just its index; the second pass composes a batch's jobs again (cheap: see
_compose.py), and drops them once the batch is trained and written. What outlives a batch is the
JobReturn of each job: status, return value (the run's metrics) and overrides, plus what it takes
to compose the job again should anyone read its `cfg` or `hydra_cfg`.

A job whose config cannot be composed or does not validate fails alone (status FAILED, the
exception as its return value); so does a batch whose engine raises, without touching the other
batches. A member that diverges or is pruned stops alone inside its batch (the training loop does
that) and completes with that status in its metrics, as a single run would.
"""
from __future__ import annotations

import gc
import importlib
import json
import logging
import os
import sys
import threading
import time
import traceback
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from json.encoder import encode_basestring
from typing import Any, Optional, Sequence

from hydra.core.utils import JobReturn, JobRuntime, JobStatus, configure_log, env_override, setup_globals
from omegaconf import DictConfig, OmegaConf

from ._compose import Base, Job, JobComposer, _plain

log = logging.getLogger(__name__)

_ABSENT = object()
_INF = float("inf")


class ValidatingLoader:
    """The multirun's config loader, except that `load_sweep_config` for the launcher's master
    config composes the job through the launcher's JobComposer.

    Sweepers call load_sweep_config on every job of a batch only to check that it composes; this
    raises what Hydra's compose raises (from the same override parser and override application)
    and returns the job's run config without the hydra node, which is what makes the check cheap:
    the typed DictConfig where the job needed one, otherwise a Plain tree (plain dicts with
    attribute access) of the same values. Nothing of the job is kept: the launch composes it again.
    """

    def __init__(self, loader, composer: JobComposer):
        self._loader = loader
        self._composer = composer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)

    def load_sweep_config(self, master_config: DictConfig, sweep_overrides: list[str]):
        if master_config is not self._composer.master:
            return self._loader.load_sweep_config(master_config, sweep_overrides)
        prepared = self._composer.prepare(sweep_overrides)
        if prepared.base is None:  # a job only Hydra itself composes: check it the usual way
            return self._loader.load_sweep_config(master_config, sweep_overrides)
        return prepared.cfg if prepared.cfg is not None else _plain(prepared.container)


class BatchedJobReturn(JobReturn):
    """A JobReturn that keeps what sweepers read (status, return value, overrides) and what it
    takes to make the rest: `cfg` and `hydra_cfg` are composed again, through the launcher's
    composer, from the job's overrides and number on first access (a job's configs cost tens of
    kilobytes and milliseconds; sweepers seldom read them)."""

    def __init__(self, composer: Optional[JobComposer] = None,
                 job_overrides: Optional[Sequence[str]] = None, idx: int = 0,
                 **kwargs: Any) -> None:
        self._composer = composer  # None: the job never composed, there is nothing to make
        self._job_overrides = job_overrides
        self._idx = idx
        self._cfg: Optional[DictConfig] = None
        self._hydra_cfg: Optional[DictConfig] = None
        super().__init__(**kwargs)

    def _job(self) -> Optional[Job]:
        return None if self._composer is None else self._composer.job(self._job_overrides, self._idx)

    @property  # type: ignore[override]
    def hydra_cfg(self) -> Optional[DictConfig]:
        if self._hydra_cfg is None and self._composer is not None:
            self._hydra_cfg = OmegaConf.create({"hydra": self._job().hydra})
        return self._hydra_cfg

    @hydra_cfg.setter
    def hydra_cfg(self, value: Optional[DictConfig]) -> None:
        self._hydra_cfg = value

    @property  # type: ignore[override]
    def cfg(self) -> Optional[DictConfig]:
        if self._cfg is None and self._composer is not None:
            self._cfg = self._job().cfg
        return self._cfg

    @cfg.setter
    def cfg(self, value: Optional[DictConfig]) -> None:
        self._cfg = value


# ---------------------------------------------------------------------------- files

def _make_dir(path: str) -> None:
    """os.makedirs(path, exist_ok=True), one mkdir where the parent exists."""
    try:
        os.mkdir(path)
    except FileExistsError:
        if not os.path.isdir(path):
            raise
    except FileNotFoundError:
        os.makedirs(path, exist_ok=True)


def _write_fd(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def _write_atomically(run_dir: str, name: str, data: bytes) -> None:
    """What rnnexp.results.atomic_write_bytes does (a temporary name beside the file, renamed onto
    it), on str paths and bare system calls."""
    stem, _, suffix = name.rpartition(".")
    tmp = os.path.join(run_dir, f".{stem}.{os.getpid()}.{threading.get_ident()}.tmp.{suffix}")
    try:
        _write_fd(tmp, data)
        os.replace(tmp, os.path.join(run_dir, name))
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp)
        raise


def write_hydra_files(job: Job) -> None:
    """.hydra/config.yaml, hydra.yaml and overrides.yaml, as run_job writes them."""
    subdir = job.hydra.get("output_subdir")
    _make_dir(job.dir)
    if subdir is None:
        return
    out = os.path.join(job.dir, str(subdir))
    _make_dir(out)
    for name, text in (("config.yaml", job.config_text()), ("hydra.yaml", job.hydra_text()),
                       ("overrides.yaml", job.overrides_text())):
        _write_fd(os.path.join(out, name), text.encode("utf-8"))


def write_run_files(job: Job, result) -> None:
    """model.npz (unless train.checkpoint=false), history.csv, then metrics.json: what
    rnnexp.train.save_result writes. Without a checkpoint the two texts are made and written here
    (the same text as rnnexp.results.write_run, faster, and with fewer file-system operations)."""
    from rnnexp.results.files import HISTORY, METRICS, json_safe
    from rnnexp.train import save_result

    cfg = job.run_cfg
    if cfg.train.checkpoint:
        save_result(job.output_dir, result, cfg)
        return
    _make_dir(job.dir)
    # metrics.json, written last and atomically, is what makes a run dir finished: while it is
    # absent nothing reads history.csv, so history.csv is written in place (a file created and
    # renamed fewer per job; file creation is most of what a job's files cost). A metrics.json
    # of an earlier run of this dir goes first, so no finished dir ever pairs it with a history
    # being rewritten.
    with suppress(FileNotFoundError):
        os.unlink(os.path.join(job.dir, METRICS))
    _write_fd(os.path.join(job.dir, HISTORY), history_text(result.loss, result.spelled).encode("utf-8"))
    _write_atomically(job.dir, METRICS, (json_text(json_safe(result.metrics)) + "\n").encode("utf-8"))


_EPOCH_PREFIXES: dict[int, list[str]] = {}  # epochs -> ["1,", "2,", ...]


def history_text(loss, spelled) -> str:
    """rnnexp.results.files.history_csv(loss, spelled), with each line's pieces made in bulk."""
    from rnnexp.results.files import history_csv

    if spelled.dtype != bool:
        return history_csv(loss, spelled)
    n = len(loss)
    prefixes = _EPOCH_PREFIXES.get(n)
    if prefixes is None:
        prefixes = _EPOCH_PREFIXES[n] = [f"{e}," for e in range(1, n + 1)]
    ends = [",1\n" if s else ",0\n" for s in spelled.tolist()]
    return "epoch,loss,spelled\n" + "".join(
        [p + r + e for p, r, e in zip(prefixes, map(repr, loss.tolist()), ends)])


def json_text(obj: Any) -> str:
    """json.dumps(obj, indent=1, ensure_ascii=False): the standard library lays out indented JSON
    in pure Python, item by item; this joins lists of pieces instead. Anything but plain JSON
    data (str keys; str, int, float, bool, None, lists, tuples, dicts) goes to json.dumps."""
    try:
        return _json(obj, "\n")
    except (TypeError, RecursionError):
        return json.dumps(obj, indent=1, ensure_ascii=False)


def _json(o: Any, pad: str) -> str:
    t = type(o)
    if t is str:
        return encode_basestring(o)
    if o is None:
        return "null"
    if o is True:
        return "true"
    if o is False:
        return "false"
    if t is int:
        return int.__repr__(o)
    if t is float:
        if o != o:
            return "NaN"
        if o in (_INF, -_INF):
            return "Infinity" if o > 0 else "-Infinity"
        return float.__repr__(o)
    inner = pad + " "
    if t is dict:
        if not o:
            return "{}"
        if any(type(k) is not str for k in o):
            raise TypeError("keys json.dumps converts")
        return ("{" + inner + ("," + inner).join([encode_basestring(k) + ": " + _json(v, inner)
                                                  for k, v in o.items()]) + pad + "}")
    if t is list or t is tuple:
        if not o:
            return "[]"
        return "[" + inner + ("," + inner).join([_json(v, inner) for v in o]) + pad + "]"
    raise TypeError(f"{t.__name__} is left to json.dumps")


# ---------------------------------------------------------------------------- grouping

def batch_key(container: dict, base: Optional[Base] = None) -> Optional[str]:
    """Jobs with equal keys share a GroupSpec and epochs, so train_group takes them as one batch:
    the whole run config except what a member owns (its seed and its optimizer). None where an
    interpolation could make equal texts differ (then the config is validated and its GroupSpec
    is the key). `base`: the base the container shares entries with, whose texts are then made
    once."""
    shared = base.container if base is not None else {}
    parts = []
    for k, v in container.items():
        if k in ("seed", "optimizer"):
            continue
        if v is shared.get(k, _ABSENT):
            text = base.key_parts.get(k)
            if text is None:
                text = base.key_parts[k] = f"{k!r}: {v!r}"
        else:
            text = f"{k!r}: {v!r}"
        parts.append(text)
    key = "{" + ", ".join(parts) + "}"  # repr(run config less the member's)
    return None if "${" in key else key


def optimizer_order(container: dict) -> str:
    """Sorts a batch's jobs so that each optimizer (type and flags) is one run of members, which
    its stacked optimizer then steps as a view (rnnexp.engine.mixed)."""
    from rnnexp.engine import BOOL_OPTIMIZER_ARGS

    optimizer = container.get("optimizer") or {}
    return repr([(k, v) for k, v in optimizer.items() if k == "name" or k in BOOL_OPTIMIZER_ARGS])


# ---------------------------------------------------------------------------- the launch

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
    files: float = 0.0  # .hydra files, resuming, grouping, hooks
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
    from rnnexp.train import group_spec, summary_line, train_group
    from rnnexp.tuning.hooks import hook_for

    setup_globals()
    config = launcher.config
    configure_log(config.hydra.hydra_logging, config.hydra.verbose)
    engine_cls = _engine_class(launcher.engine)
    composer: JobComposer = launcher.composer
    n = len(job_overrides)
    returns: list[Optional[JobReturn]] = [None] * n
    groups: dict[Any, list[tuple[str, int]]] = {}  # batch key -> (optimizer order, job)
    echo = _Echo(launcher.progress, n)
    timer = launcher.timer = _Timer()
    working_dir, task_name = os.getcwd(), JobRuntime.instance().get("name")

    def returned(i: int, job: Optional[Job], status: JobStatus, value: Any) -> None:
        ret = returns[i] = BatchedJobReturn(
            composer if job is not None else None, job_overrides[i], initial_job_idx + i,
            overrides=list(job.task_overrides if job is not None else job_overrides[i]),
            working_dir=working_dir, task_name=task_name, status=status)
        ret.return_value = value

    def fail(i: int, job: Optional[Job], err: Exception) -> None:
        # the return keeps the exception, and so its traceback: drop the locals of the frames it
        # has left (a failed train_group's would hold its whole batch until the sweep ends)
        traceback.clear_frames(err.__traceback__)
        returned(i, job, JobStatus.FAILED, err)
        echo.done(f"#{initial_job_idx + i} failed: {err}")

    def complete(i: int, job: Job, metrics: dict, line: str) -> None:
        returned(i, job, JobStatus.COMPLETED, metrics)
        echo.done(line)

    def invalid(job: Job) -> Optional[Exception]:
        try:
            validate(job.run_cfg)
            return None
        except Exception as e:  # noqa: BLE001
            return e

    # ---- first pass: each job's batch (or its stored result); nothing of the job is kept
    def place(i: int, overrides: Sequence[str]) -> None:
        idx = initial_job_idx + i
        try:
            prepared = composer.prepare(overrides)
            job = composer.finish(prepared, idx) if prepared.base is None else None
        except Exception as e:  # noqa: BLE001 - a bad job fails alone
            fail(i, None, e)
            return
        start = time.perf_counter()
        try:
            if job is not None:
                container, base, cfg = job.config_container(), None, job.cfg
            else:
                container, base, cfg = prepared.run_container, prepared.base, prepared.cfg
            skip_done = container["train"]["skip_done"] if cfg is None else cfg.train.skip_done
            if skip_done:
                job = job or composer.finish(prepared, idx)
                done = read_done(job.output_dir)
                if done is not None:
                    write_hydra_files(job)
                    complete(i, job, done, f"{job.output_dir}: done before, skipped")
                    return
            key = batch_key(container, base)
            if key is None:
                cfg = cfg if cfg is not None else composer.finish(prepared, idx).cfg
                key = (group_spec(cfg, validate(cfg)), int(cfg.train.epochs))
            groups.setdefault(key, []).append((optimizer_order(container), i))
        except Exception as e:  # noqa: BLE001 - a bad job fails alone, its .hydra files written
            try:
                job = job or composer.finish(prepared, idx)
                write_hydra_files(job)
            except Exception as write_error:  # noqa: BLE001
                e = write_error
            fail(i, job, e)
        finally:
            timer.files += time.perf_counter() - start

    with _gc_paused():  # thousands of small containers: the cycle collector would rescan them often
        for i, overrides in enumerate(job_overrides):
            place(i, overrides)

    batches = [chunk for members in groups.values()
               for chunk in _chunks([i for _, i in sorted(members)], launcher.max_batch)]
    del groups
    log.info(f"Batched launcher: {n} jobs in {len(batches)} batches, sweep output dir: "
             f"{config.hydra.sweep.dir}")

    # ---- second pass, batch by batch: compose, .hydra files, hooks, train, run files
    # A job's .hydra files are written by a helper thread while its batch trains (file writes
    # and torch's kernels leave the interpreter free); a job is done, or failed, only once they
    # are written (settle).
    writes: dict[int, Future] = {}

    def settle(i: int) -> Optional[BaseException]:
        future = writes.pop(i, None)
        if future is None:
            return None
        start = time.perf_counter()
        try:
            return future.exception()
        finally:
            timer.files += time.perf_counter() - start

    def failed(i: int, job: Optional[Job], err: Exception) -> None:
        settle(i)
        fail(i, job, err)

    def train(jobs: dict[int, Job], members: list[int], hooks: list) -> None:
        start = time.perf_counter()
        try:
            results = train_group([jobs[i].run_cfg for i in members], hooks, engine_cls=engine_cls)
        except Exception as e:  # noqa: BLE001 - the batch fails, the other batches go on
            timer.training += time.perf_counter() - start
            errors = [invalid(jobs[i]) for i in members] if len(members) > 1 else [None]
            if any(errors):  # train_group validates first: fail the invalid, train the rest
                for i, err in zip(members, errors):
                    if err is not None:
                        failed(i, jobs[i], err)
                keep = [k for k, err in enumerate(errors) if err is None]
                if keep:
                    train(jobs, [members[k] for k in keep], [hooks[k] for k in keep])
            else:
                for i in members:
                    failed(i, jobs[i], e)
            return
        timer.training += time.perf_counter() - start
        for k, (i, result) in enumerate(zip(members, results)):
            results[k] = None  # what the return keeps is the metrics dict
            write_error = settle(i)
            if write_error is not None:
                fail(i, jobs[i], write_error)
                continue
            start = time.perf_counter()
            try:
                write_run_files(jobs[i], result)
            except Exception as e:  # noqa: BLE001
                fail(i, jobs[i], e)
                continue
            finally:
                timer.results += time.perf_counter() - start
            complete(i, jobs[i], result.metrics, summary_line(result.metrics))

    def run_batch(chunk: list[int]) -> None:
        jobs: dict[int, Job] = {}
        members, hooks = [], []
        try:
            compose_and_train(chunk, jobs, members, hooks)
        finally:  # a failed job's traceback still refers to this frame: empty what it holds
            for i in chunk:
                settle(i)  # no write of this batch outlives it
            jobs.clear()
            members.clear()
            hooks.clear()

    def compose_and_train(chunk: list[int], jobs: dict[int, Job], members: list[int],
                          hooks: list) -> None:
        with _gc_paused():
            for i in chunk:
                job = None
                try:
                    job = composer.job(job_overrides[i], initial_job_idx + i)
                    start = time.perf_counter()
                    try:
                        writes[i] = writer.submit(write_hydra_files, job)
                        with env_override(job.env_set):  # the hook finds its trial in these variables
                            hooks.append(hook_for(job.run_cfg))
                    finally:
                        timer.files += time.perf_counter() - start
                    members.append(i)
                    jobs[i] = job
                except Exception as e:  # noqa: BLE001 - a bad job fails alone
                    failed(i, job, e)
        job = None  # noqa: F841 - tracebacks keep their callers' frames, and so this one
        if members:
            train(jobs, members, hooks)

    with _torch_threads(launcher.threads), ThreadPoolExecutor(1, "hydra-files") as writer:
        for chunk in batches:
            run_batch(chunk)
    echo.close()
    timer.compose, composer.seconds = composer.seconds, 0.0
    log.info(timer.line(n, len(batches)))
    return returns  # type: ignore[return-value]
