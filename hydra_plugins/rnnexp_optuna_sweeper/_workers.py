"""Several sweeper processes ("workers") on one study: who runs a trial, whether that process is
still alive, what becomes of trials whose worker died, and how the workers stop at n_trials.

Every trial records its worker in `user_attrs.worker` (host, pid, process start time). Two ways
find a trial whose worker is gone:

- RDB storage with heartbeats (Optuna's own mechanism): while a trial runs, a thread of its worker
  records a heartbeat every `heartbeat_interval` seconds; `optuna.storages.fail_stale_trials` fails
  the trials whose last heartbeat is older than `grace_period`, on any machine.
- Storage without heartbeats (the journal file, RDB with heartbeat_interval=null), trials of this
  host: the worker process no longer exists (its pid is gone, or now belongs to a process started
  later). This is the journal file's equivalent of heartbeats: Optuna's JournalStorage has none,
  and a journal file serves the processes of one machine.

A failed trial of a dead worker is queued again with the same parameters (Optuna's
RetryHeartbeatStaleTrialCallback: a WAITING copy that the next `study.ask()` picks up), at most
`max_retry` times.
"""
from __future__ import annotations

import copy
import logging
import os
import socket
import warnings
from contextlib import ExitStack, contextmanager
from datetime import datetime, timedelta
from typing import Any, Iterator, Sequence

import optuna
from optuna.exceptions import ExperimentalWarning, UpdateFinishedTrialError
from optuna.storages import RetryHeartbeatStaleTrialCallback, fail_stale_trials
from optuna.storages._heartbeat import get_heartbeat_thread, is_heartbeat_enabled
from optuna.trial import FrozenTrial, TrialState

from rnnexp.tuning.hooks import PRUNED_ATTR

log = logging.getLogger(__name__)

WORKER_ATTR = "worker"  # trial user attr: {"host", "pid", "start"} of the sweeper running it
DEAD_WORKER_REASON = "left running by a process that stopped"
# user attrs that belong to one run of a trial, not to its parameters: a retry starts without them
RUN_ATTRS = ("job_nums", "job_dirs", WORKER_ATTR, "fail_reason", PRUNED_ATTR)
CLAIMED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)


# ---------------------------------------------------------------------------------- identity
_WORKERS: dict[int, dict[str, Any]] = {}  # pid -> this_worker(), read once per process


def this_worker() -> dict[str, Any]:
    pid = os.getpid()  # a forked process is a worker of its own
    if pid not in _WORKERS:
        _WORKERS[pid] = {"host": socket.gethostname(), "pid": pid, "start": _process_start(pid)}
    return dict(_WORKERS[pid])


def _process_start(pid: int) -> str | None:
    """The start time of process `pid` in clock ticks since boot (Linux), so that a pid reused by
    a later process is not taken for the worker; None where /proc is not there."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    state, start = fields[0], fields[19]  # fields 3 and 22 of proc(5), counted after the name
    return None if state == "Z" else start  # a zombie has exited: only its parent has not reaped it


def worker_is_gone(worker: dict[str, Any]) -> bool | None:
    """True if the worker process has exited, False if it runs, None if it is on another host."""
    me = this_worker()
    if worker.get("host") != me["host"]:
        return None
    if worker == me:  # this process: its own trials of the batch that trains (no /proc to read)
        return False
    pid = int(worker["pid"])
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # it exists, under another user
    start = _process_start(pid)
    if start is None:
        return os.path.exists("/proc/self/stat")  # on Linux: a zombie; elsewhere: trust kill()
    return worker.get("start") is not None and start != worker["start"]


# ---------------------------------------------------------------------------------- retries
class RetryTrialOfDeadWorker(RetryHeartbeatStaleTrialCallback):
    """Optuna's retry callback; the copy keeps the parameters but not the attributes of the run
    that died (its job numbers, its worker, a prune mark of its lead seed)."""

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        clean = copy.copy(trial)
        clean.user_attrs = {k: v for k, v in trial.user_attrs.items() if k not in RUN_ATTRS}
        super().__call__(study, clean)


def retry_callback(max_retry: int | None) -> RetryTrialOfDeadWorker:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        return RetryTrialOfDeadWorker(max_retry=max_retry)


# ---------------------------------------------------------------------------------- reaping
def reap_dead_trials(study: optuna.Study, retry: RetryTrialOfDeadWorker,
                     grace_period: float) -> list[int]:
    """Fail (and queue again) the RUNNING trials whose worker is dead; return their numbers.

    A trial without a worker record older than grace_period counts as dead too: its worker stopped
    between ask and record, or was a sweeper that did not record workers.
    """
    with_heartbeats = is_heartbeat_enabled(study._storage)
    reaped = _fail_heartbeat_stale(study) if with_heartbeats else []
    now = datetime.now()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.user_attrs.get(WORKER_ATTR)
        if worker is not None:
            # with heartbeats, the heartbeat alone decides, here as on other hosts
            dead = not with_heartbeats and worker_is_gone(worker) is True
            reason = f"{DEAD_WORKER_REASON} ({worker['host']}:{worker['pid']})"
        else:
            started = trial.datetime_start or now
            dead = now - started > timedelta(seconds=grace_period)
            reason = f"{DEAD_WORKER_REASON} (no worker recorded, started {started:%Y-%m-%d %H:%M:%S})"
        if dead and fail_trial(study, trial, reason):
            retry(study, trial)
            reaped.append(trial.number)
    for number in reaped:
        log.warning("Trial %d was left running by a worker that stopped: marked failed", number)
    return reaped


def _fail_heartbeat_stale(study: optuna.Study) -> list[int]:
    """Optuna's own check (RDB storage with heartbeats); its storage callback queues the retries."""
    before = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        fail_stale_trials(study)
    now_failed = study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
    return sorted(t.number for t in now_failed if t.number in before)


def fail_trial(study: optuna.Study, trial: FrozenTrial | optuna.Trial, reason: str) -> bool:
    """Mark a trial FAIL with its reason; False if it had finished already (another worker was
    first): storages refuse to update a finished trial, so exactly one worker succeeds."""
    storage = study._storage
    try:
        storage.set_trial_user_attr(trial._trial_id, "fail_reason", reason[:500])
        return storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
    except UpdateFinishedTrialError:
        return False


def can_watch(study: optuna.Study, trial: FrozenTrial) -> bool:
    """Whether this worker would notice the death of the trial's worker (so may wait for it)."""
    if is_heartbeat_enabled(study._storage):
        return True
    worker = trial.user_attrs.get(WORKER_ATTR)
    return worker is None or worker_is_gone(worker) is not None


# ---------------------------------------------------------------------------------- heartbeats
@contextmanager
def heartbeats(study: optuna.Study, trials: Sequence[optuna.Trial]) -> Iterator[None]:
    """Optuna's heartbeat thread for each trial while the block runs (nothing without heartbeats)."""
    with ExitStack() as stack:
        for trial in trials:
            stack.enter_context(get_heartbeat_thread(trial._trial_id, study._storage))
        yield


def ask(study: optuna.Study) -> optuna.Trial:
    """study.ask() without Optuna's note that heartbeats are meant for Study.optimize: this loop
    runs the heartbeat threads and the stale-trial check itself."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Heartbeat of storage")
        return study.ask()


# ---------------------------------------------------------------------------------- the total
def beyond_total(study: optuna.Study, trials: Sequence[optuna.Trial], total: int) -> list[optuna.Trial]:
    """The trials of `trials` past the study's total: workers that asked at the same moment may
    together hold more trials than were missing. Every worker ranks the claimed trials (finished or
    running) by number, the same order everywhere, and gives up those ranked `total` or later."""
    claimed = sorted(t.number for t in study.get_trials(deepcopy=False, states=CLAIMED))
    rank = {number: i for i, number in enumerate(claimed)}
    return [t for t in trials if rank.get(t.number, 0) >= total]
