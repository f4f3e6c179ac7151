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

import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Protocol

from rnnexp.tuning.storage import MEMORY_STORAGE, storage_for_jobs

if TYPE_CHECKING:  # optuna is imported lazily: plain runs never pay for it
    import optuna

ENV_STORAGE = "RNNEXP_OPTUNA_STORAGE"
ENV_STUDY = "RNNEXP_OPTUNA_STUDY"
ENV_TRIAL = "RNNEXP_OPTUNA_TRIAL"
ENV_LEAD = "RNNEXP_OPTUNA_LEAD"
ENV_REPORT_EVERY = "RNNEXP_OPTUNA_REPORT_EVERY"

PRUNER_ATTR = "pruner"  # study user attr: the pruner's `_target_` config, for jobs in other processes
PRUNED_ATTR = "pruned_at_epoch"  # trial user attr set by the lead seed when the pruner stops it
class EpochHook(Protocol):
    def report(self, epoch: int, loss: float) -> bool:
        """Record the loss of `epoch` (1-based); return True to stop (prune) this run."""
        ...


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

    storage = storage_for_jobs(ref.storage)
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
    pruner each time; a prune decision is recorded on the trial for the other seeds. The training
    loop applies it at once to the trial's seeds in the same batch (rnnexp.train.TrialVoices)."""

    lead = True

    def __init__(self, trial: "optuna.Trial", report_every: int, trial_key: Any = None):
        self.trial = trial
        self.report_every = report_every
        self.trial_key = trial_key

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

    lead = False

    def __init__(self, trial: "optuna.Trial", report_every: int, trial_key: Any = None):
        self.trial = trial
        self.report_every = report_every
        self.trial_key = trial_key
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
    return hook_class(trial, ref.report_every, ref.key)
