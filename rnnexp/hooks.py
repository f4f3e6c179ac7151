"""How a training run finds its Optuna trial: per-epoch loss reports and the pruning decision.

The Optuna sweeper (hydra_plugins.rnnexp_optuna_sweeper) gives every job a few environment
variables through `hydra.job.env_set` (Hydra sets them around the task function, in-process or in a
worker process): the storage, the study, the trial number, whether this job is the trial's lead
seed, and how often to report. The training loop only does

    hook = hook_for(cfg)                   # once per run; None outside an Optuna study
    ...
    if hook is not None and hook.report(epoch, loss):
        status = "pruned"                  # stop training this run

A trial may run as several jobs, one per seed. Only the lead seed (the first one) reports its loss
and asks the pruner; when the pruner says stop, the lead marks the trial (user attr
`pruned_at_epoch`) and the other seeds of that trial stop at their next check. Reporting all seeds
at the same steps would make Optuna drop all but the first value of each step.

When the sweeper runs the job in its own process it registers the live `optuna.Trial`, so reports
go straight to it; otherwise the job opens the storage by its URL once per process.
"""
from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional, Protocol

if TYPE_CHECKING:  # optuna is imported lazily: plain runs never pay for it
    import optuna

log = logging.getLogger(__name__)

ENV_STORAGE = "RNNEXP_OPTUNA_STORAGE"
ENV_STUDY = "RNNEXP_OPTUNA_STUDY"
ENV_TRIAL = "RNNEXP_OPTUNA_TRIAL"
ENV_LEAD = "RNNEXP_OPTUNA_LEAD"
ENV_REPORT_EVERY = "RNNEXP_OPTUNA_REPORT_EVERY"

PRUNER_ATTR = "pruner"  # study user attr: the pruner's `_target_` config, for jobs in other processes
PRUNED_ATTR = "pruned_at_epoch"  # trial user attr set by the lead seed when the pruner stops it
MEMORY_STORAGE = "memory"
SCHEMA_RACE_ATTEMPTS = 5


class StorageError(ValueError):
    """An Optuna storage that cannot be opened."""


class EpochHook(Protocol):
    def report(self, epoch: int, loss: float) -> bool:
        """Record the loss of `epoch` (1-based); return True to stop (prune) this run."""
        ...


# ---------------------------------------------------------------------------------------------
# Storage: one spelling shared by the sweeper and the jobs


def resolve_storage(spec: str | None, default_path: str | Path) -> str:
    """The configured storage as the absolute form every process understands.

    None -> the default journal file; "memory" stays in memory; a URL with "://" (sqlite:///...,
    postgresql://...) is an RDB URL, relative sqlite paths made absolute; anything else is a
    journal file path, made absolute (jobs may run in another working directory).
    """
    if spec is None:
        return str(Path(default_path).absolute())
    if spec in (MEMORY_STORAGE, ":memory:"):
        return MEMORY_STORAGE
    if spec.startswith("sqlite:///") and not spec.startswith("sqlite:////"):
        relative = spec[len("sqlite:///") :]
        if relative and relative != ":memory:":
            return "sqlite:///" + str(Path(relative).absolute())
    if "://" in spec:
        return spec
    return str(Path(spec).absolute())


def is_rdb_url(url: str) -> bool:
    """sqlite:///..., postgresql://..., mysql+pymysql://...: Optuna's RDB storage (SQLAlchemy)."""
    return "://" in url


def open_storage(url: str, *, heartbeat_interval: int | None = None,
                 grace_period: int | None = None,
                 stale_trial_callback: Any = None) -> "optuna.storages.BaseStorage":
    """Open a resolved storage (see resolve_storage); any failure is one line naming the URL.

    The heartbeat arguments go to RDBStorage (the sweeper's own storage; jobs need none).
    """
    import optuna

    try:
        if url == MEMORY_STORAGE:
            return optuna.storages.InMemoryStorage()
        if is_rdb_url(url):
            return _open_rdb(url, heartbeat_interval, grace_period, stale_trial_callback)
        return _open_journal_file(Path(url))
    except Exception as err:  # noqa: BLE001 - every cause gets the same one-line message
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise StorageError(f"cannot open Optuna storage {url!r}: {reason}") from err


def _open_rdb(url: str, heartbeat_interval: int | None, grace_period: int | None,
              stale_trial_callback: Any) -> "optuna.storages.RDBStorage":
    import warnings

    import optuna

    import sqlalchemy.exc

    # a server drops idle connections (MySQL's wait_timeout); test each one before use
    engine_kwargs = {} if url.startswith("sqlite") else {"pool_pre_ping": True}
    for attempt in range(1, SCHEMA_RACE_ATTEMPTS + 1):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeat
                return optuna.storages.RDBStorage(
                    url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat_interval,
                    grace_period=grace_period, heartbeat_stale_trial_callback=stale_trial_callback)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError,
                sqlalchemy.exc.OperationalError) as err:
            # workers started together on an empty database all create Optuna's tables: the
            # losers of that race find them there on the next try
            if attempt == SCHEMA_RACE_ATTEMPTS or not _lost_schema_race(err):
                raise
            time.sleep(0.2 * attempt)
    raise AssertionError("unreachable")


def _lost_schema_race(err: Exception) -> bool:
    text = str(err).lower()
    return "already exists" in text or "duplicate" in text


def _open_journal_file(path: Path) -> "optuna.storages.JournalStorage":
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path.parent.mkdir(parents=True, exist_ok=True)
    _repair_journal(path)
    return JournalStorage(JournalFileBackend(str(path)))


JOURNAL_RECORD = b'{"op_code":'  # how every line Optuna's journal writes begins


def _is_record(line: bytes) -> bool:
    return line.startswith(JOURNAL_RECORD) and line.rstrip(b"\r").endswith(b"}")


def _repair_journal(path: Path) -> None:
    """Refuse a file that is no journal; cut off a damaged tail (a last line torn by a kill, or
    garbage after the last record) and keep it in <file>.damaged.

    The journal reader would refuse every line appended after a bad one, so the tail must go
    before anything is appended; damage between two good records cannot be repaired and is an error.
    Opening a sound journal takes no lock. A repair is made under Optuna's own journal lock, on the
    file as read after taking it, so a record another worker appends meanwhile is never cut off.
    """
    if not path.exists() or _damaged_tail(path.read_bytes()) is None:
        return
    from optuna.storages.journal import JournalFileSymlinkLock

    lock = JournalFileSymlinkLock(str(path))  # what JournalFileBackend locks its appends with
    lock.acquire()
    try:
        data = path.read_bytes()
        keep = _damaged_tail(data)
        if keep is None:
            return
        damaged = path.with_name(path.name + ".damaged")
        with open(damaged, "ab") as f:
            f.write(data[keep:])
        with open(path, "r+b") as f:
            f.truncate(keep)
    finally:
        lock.release()
    log.warning("Optuna journal %s: cut off %d bytes of damaged tail after its last whole record "
                "(kept in %s)", path, len(data) - keep, damaged)


def _damaged_tail(data: bytes) -> Optional[int]:
    """None for a sound journal, else the length of its sound part; raises for a file that is no
    journal or is damaged between good records."""
    if not data:
        return None
    *whole, torn = data.split(b"\n")  # torn: what follows the last newline (b"" if none)
    good = [_is_record(line) for line in whole]
    if not (good[0] if whole else torn.startswith(JOURNAL_RECORD)):
        raise ValueError("not an Optuna journal file (its first line is not a journal record); "
                         "name another file or an empty one")
    last_good = max((i for i, ok in enumerate(good) if ok), default=-1)
    bad = [i + 1 for i, ok in enumerate(good[:last_good + 1]) if not ok]
    if bad:
        raise ValueError(f"journal line {bad[0]} is damaged between good records; "
                         "it cannot be repaired automatically")
    keep = sum(len(line) + 1 for line in whole[:last_good + 1])
    return None if keep == len(data) else keep


@lru_cache(maxsize=8)
def _storage_for_jobs(url: str) -> "optuna.storages.BaseStorage":
    # One storage object per process: a journal storage replays the file once, then only the tail.
    return open_storage(url)


# ---------------------------------------------------------------------------------------------
# The trial reference passed to each job


@dataclass(frozen=True)
class TrialRef:
    storage: str  # resolved storage URL or journal path
    study: str
    number: int  # trial number in the study
    lead: bool  # the seed that reports and asks the pruner
    report_every: int  # epochs between two reports

    def to_env(self) -> dict[str, str]:
        return {
            ENV_STORAGE: self.storage,
            ENV_STUDY: self.study,
            ENV_TRIAL: str(self.number),
            ENV_LEAD: "1" if self.lead else "0",
            ENV_REPORT_EVERY: str(self.report_every),
        }

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "TrialRef | None":
        if ENV_TRIAL not in env:
            return None
        return cls(
            storage=env[ENV_STORAGE],
            study=env[ENV_STUDY],
            number=int(env[ENV_TRIAL]),
            lead=env.get(ENV_LEAD, "1") == "1",
            report_every=int(env.get(ENV_REPORT_EVERY, "1")),
        )

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.storage, self.study, self.number)


# Trials of the sweeper running in this very process: (storage, study, number) -> optuna.Trial
_live_trials: dict[tuple[str, str, int], Any] = {}


def register_live_trial(ref: TrialRef, trial: "optuna.Trial") -> None:
    _live_trials[ref.key] = trial


def unregister_live_trial(ref: TrialRef) -> None:
    _live_trials.pop(ref.key, None)


def _trial_for(ref: TrialRef) -> "optuna.Trial | None":
    """The live trial if the sweeper is in this process, else one opened from the storage."""
    if ref.key in _live_trials:
        return _live_trials[ref.key]
    if ref.storage == MEMORY_STORAGE:
        return None  # an in-memory study is unreachable from another process
    import optuna
    from hydra.utils import instantiate

    storage = _storage_for_jobs(ref.storage)
    study_id = storage.get_study_id_from_name(ref.study)
    pruner_cfg = storage.get_study_user_attrs(study_id).get(PRUNER_ATTR)
    pruner = instantiate(pruner_cfg) if pruner_cfg else optuna.pruners.NopPruner()
    study = optuna.load_study(study_name=ref.study, storage=storage, pruner=pruner)
    trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, ref.number)
    if storage.get_trial(trial_id).state != optuna.trial.TrialState.RUNNING:
        return None  # finished long ago: a stale reference must not write into it
    return optuna.Trial(study, trial_id)


# ---------------------------------------------------------------------------------------------
# The hooks


class LeadSeedHook:
    """Reports every `report_every` epochs (Optuna storage writes cost milliseconds) and asks the
    pruner each time; a prune decision is recorded on the trial for the other seeds."""

    def __init__(self, trial: "optuna.Trial", report_every: int):
        self.trial = trial
        self.report_every = report_every

    def report(self, epoch: int, loss: float) -> bool:
        if epoch % self.report_every != 0 or not math.isfinite(loss):
            return False  # a non-finite loss is the training loop's divergence, not a report
        self.trial.report(float(loss), step=epoch)
        if not self.trial.should_prune():
            return False
        self.trial.set_user_attr(PRUNED_ATTR, epoch)
        return True


class FollowerSeedHook:
    """Another seed of the same trial: reports nothing, stops once the lead seed was pruned."""

    def __init__(self, trial: "optuna.Trial", report_every: int):
        self.trial = trial
        self.report_every = report_every
        self._checked = False

    def report(self, epoch: int, loss: float) -> bool:
        if self._checked and epoch % self.report_every != 0:
            return False
        self._checked = True  # first call checks at once: the lead may have finished already
        return PRUNED_ATTR in self.trial.user_attrs


def hook_for(cfg: Any = None, env: Mapping[str, str] | None = None) -> EpochHook | None:
    """The epoch hook of the run configured by `cfg`, or None when it belongs to no Optuna trial.

    env: where the trial reference is read, os.environ by default. A launcher that trains several
    jobs in one process passes each job's `hydra.job.env_set` here. Multi-objective studies get no
    hook: Optuna cannot prune them.
    """
    ref = TrialRef.from_env(os.environ if env is None else env)
    if ref is None:
        return None
    trial = _trial_for(ref)
    if trial is None or len(trial.study.directions) > 1:
        return None
    hook_class = LeadSeedHook if ref.lead else FollowerSeedHook
    return hook_class(trial, ref.report_every)
