"""The Optuna sweeper: ask a batch of trials, launch their jobs together, tell the outcomes.

One study lives in a persistent storage; running the same command again (same storage and
study_name) resumes it: only the trials still missing to reach n_trials are run, job numbers go
on from the highest one used, and trials left RUNNING by a killed process are marked FAIL.
"""
from __future__ import annotations

import importlib.util
import logging
import math
import re
from datetime import datetime
from pathlib import Path
from typing import Any, Sequence

import optuna
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from optuna.trial import TrialState

from rnnexp.hooks import (
    PRUNER_ATTR,
    TrialRef,
    open_storage,
    register_live_trial,
    resolve_storage,
    unregister_live_trial,
)

from ._objective import Objective, Outcome
from ._results import copy_results, write_results
from ._search_space import (
    SearchSpace,
    SearchSpaceError,
    build_search_space,
    check_forbidden,
    quoted,
)

log = logging.getLogger(__name__)

DEFAULT_STUDY_DIR = Path("results/studies")
SAMPLER_PACKAGES = {"GPSampler": "scipy", "QMCSampler": "scipy", "CmaEsSampler": "cmaes"}
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


class SweeperConfigError(ValueError):
    """A hydra.sweeper setting that cannot be used."""


class FailureRateExceeded(RuntimeError):
    """More trials failed than max_failure_rate allows; the study's results were still written."""


class OptunaSweeperImpl(Sweeper):
    def __init__(
        self,
        sampler: DictConfig,
        pruner: DictConfig,
        direction: Any,
        storage: str | None,
        study_name: str | None,
        n_trials: int,
        n_jobs: int,
        max_failure_rate: float,
        params: DictConfig | None,
        conditional: DictConfig | None,
        objective: Any,
        seeds: Sequence[int] | None,
        seed_key: str,
        aggregate: str,
        report_every: int,
        forbid: Sequence[str],
        results_dir: str | None,
    ) -> None:
        _require(n_trials >= 1, "n_trials", n_trials, "must be at least 1")
        _require(n_jobs >= 1, "n_jobs", n_jobs, "must be at least 1")
        _require(max_failure_rate >= 0, "max_failure_rate", max_failure_rate, "must be >= 0")
        _require(report_every >= 1, "report_every", report_every, "must be at least 1")
        self.sampler_cfg = _container(sampler)
        self.pruner_cfg = _container(pruner)
        self.directions = _directions(direction)
        self.storage = storage
        self.study_name = study_name
        self.n_trials = n_trials
        self.n_jobs = n_jobs
        self.max_failure_rate = max_failure_rate
        self.params = _container(params) or {}
        self.conditional = _container(conditional) or {}
        objective = _container(objective)
        self.objective_names = [objective] if isinstance(objective, str) else list(objective)
        self.objective = Objective(objective, len(self.directions), aggregate)
        self.seeds: list[int | None] = list(seeds) if seeds else [None]
        _require(len(set(self.seeds)) == len(self.seeds), "seeds", seeds, "has duplicates")
        self.seed_key = seed_key
        self.report_every = report_every
        self.forbid = list(forbid)
        self.results_dir = results_dir
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    # ------------------------------------------------------------------------------ the sweep
    def sweep(self, arguments: list[str]) -> optuna.Study:
        assert self.config is not None
        space = self._search_space(arguments)
        study, storage_url = self._open_study(space)
        fail_abandoned_trials(study)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")

        n_trials = self._n_trials_for(space)
        needed = n_trials - count_finished(study)
        log.info("Study %r in %s: %d of %d trials to run", study.study_name, storage_url,
                 max(needed, 0), n_trials)
        failed = 0
        next_job = next_job_number(study, sweep_dir)
        try:
            while (missing := n_trials - count_finished(study)) > 0:
                trials = [study.ask() for _ in range(min(self.n_jobs, missing))]
                outcomes = self._run_batch(study, storage_url, space, trials, next_job)
                next_job += len(trials) * len(self.seeds)
                failed += sum(o.state == TrialState.FAIL for o in outcomes)
                if failed > self.max_failure_rate * needed:
                    raise FailureRateExceeded(
                        f"{failed} failed trials exceed max_failure_rate={self.max_failure_rate}"
                        f" of {needed}; study {study.study_name!r} stopped (see fail_reason in"
                        f" {sweep_dir / 'trials.csv'})"
                    )
        finally:
            self._write_results(study, sweep_dir)
        return study

    def _search_space(self, arguments: list[str]) -> SearchSpace:
        space = build_search_space(self.params, self.conditional, arguments)
        forbid = self.forbid + ([self.seed_key] if self.seeds != [None] else [])
        check_forbidden(space, forbid)
        return space

    def _n_trials_for(self, space: SearchSpace) -> int:
        if not _is_grid(self.sampler_cfg):
            return self.n_trials
        size = math.prod(len(v) for v in self._grid(space).values())
        if self.n_trials > size:
            log.warning("n_trials=%d is more than the grid's %d points: running %d",
                        self.n_trials, size, size)
        return min(self.n_trials, size)

    def _grid(self, space: SearchSpace) -> dict[str, list[Any]]:
        return self.sampler_cfg.get("search_space") or space.grid()

    # ------------------------------------------------------------------------------ the study
    def _open_study(self, space: SearchSpace) -> tuple[optuna.Study, str]:
        assert self.config is not None
        name = self.study_name or (
            f"{self.config.hydra.job.name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
        )
        url = resolve_storage(self.storage, DEFAULT_STUDY_DIR / f"{name}.log")
        study = optuna.create_study(
            storage=open_storage(url),
            sampler=self._make_sampler(space),
            pruner=_instantiate("pruner", self.pruner_cfg),
            study_name=name,
            directions=self.directions,
            load_if_exists=True,
        )
        found = [d.name.lower() for d in study.directions]
        if found != self.directions:
            raise SweeperConfigError(
                f"direction={self.directions} but study {name!r} in {url} was created with {found}"
            )
        # jobs in other processes rebuild the pruner from here (see rnnexp.hooks)
        study.set_user_attr(PRUNER_ATTR, self.pruner_cfg)
        return study, url

    def _make_sampler(self, space: SearchSpace) -> optuna.samplers.BaseSampler:
        target = str(self.sampler_cfg.get("_target_"))
        package = SAMPLER_PACKAGES.get(target.rsplit(".", 1)[-1])
        if package and importlib.util.find_spec(package) is None:
            raise SweeperConfigError(f"sampler {target!r} needs the package {package!r}: "
                                     f"pip install {package}")
        if _is_grid(self.sampler_cfg):
            cfg = {**self.sampler_cfg, "search_space": self._grid(space),
                   "_target_": f"{__name__}.AskTellGridSampler"}
            return _instantiate("sampler", cfg)
        return _instantiate("sampler", self.sampler_cfg)

    # ------------------------------------------------------------------------------ one batch
    def _run_batch(self, study: optuna.Study, storage_url: str, space: SearchSpace,
                   trials: list[optuna.Trial], first_job: int) -> list[Outcome]:
        """Launch every job of these trials as one launcher batch, then tell their outcomes."""
        refs: list[TrialRef] = []
        told: set[int] = set()
        try:
            batch = []
            n_seeds = len(self.seeds)
            for k, trial in enumerate(trials):
                overrides = space.suggest(trial)
                # recorded before launching, so a killed sweep's numbers are never reused
                trial.set_user_attr("job_nums", _job_nums(first_job, k, n_seeds))
                for i, seed in enumerate(self.seeds):
                    ref = TrialRef(storage_url, study.study_name, trial.number, lead=i == 0,
                                   report_every=self.report_every)
                    refs.append(ref)
                    register_live_trial(ref, trial)
                    seed_override = [] if seed is None else [f"{self.seed_key}={seed}"]
                    batch.append(overrides + seed_override + env_overrides(ref))
            self.validate_batch_is_legal(batch)
            returns = self.launcher.launch(batch, initial_job_idx=first_job)
            outcomes = []
            for k, trial in enumerate(trials):
                outcomes.append(self._tell(study, trial, list(returns[k * n_seeds : (k + 1) * n_seeds])))
                told.add(trial.number)
            return outcomes
        except BaseException as err:
            for trial in trials:  # never leave a trial RUNNING behind us
                if trial.number not in told:
                    _fail_if_running(study, trial, f"{type(err).__name__}: {err}")
            raise
        finally:
            for ref in refs:
                unregister_live_trial(ref)

    def _tell(self, study: optuna.Study, trial: optuna.Trial, jobs: list[JobReturn]) -> Outcome:
        outcome = self.objective.outcome(jobs, self.seeds)
        trial.set_user_attr("job_dirs", [_output_dir(j) for j in jobs])
        if self.seeds != [None]:
            trial.set_user_attr("seeds", self.seeds)
            trial.set_user_attr("seed_values", _json_safe(outcome.seed_values))
        if outcome.state == TrialState.FAIL:
            log.warning("Trial %d failed: %s", trial.number, outcome.reason)
            trial.set_user_attr("fail_reason", outcome.reason[:500])
            study.tell(trial, state=TrialState.FAIL)
        elif outcome.state == TrialState.PRUNED:
            study.tell(trial, state=TrialState.PRUNED)
        else:
            study.tell(trial, outcome.values)
        return outcome

    def _write_results(self, study: optuna.Study, sweep_dir: Path) -> None:
        paths = write_results(study, sweep_dir, self.objective_names)
        if self.results_dir:
            copy_results(paths, Path(self.results_dir))
        if study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            best = study.best_trials[0]
            log.info("Best trial %d: values %s, params %s", best.number, best.values, best.params)


# ---------------------------------------------------------------------------------- helpers
class AskTellGridSampler(optuna.samplers.GridSampler):
    """GridSampler calls Study.stop() once the grid is done, which raises outside optimize(); here
    the sweep loop ends by itself, n_trials being capped at the grid size."""

    def after_trial(self, study, trial, state, values) -> None:
        pass


def _fail_if_running(study: optuna.Study, trial: optuna.Trial, reason: str) -> None:
    try:
        trial.set_user_attr("fail_reason", reason[:500])
        study.tell(trial, state=TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        pass  # told already, before the error


def env_overrides(ref: TrialRef) -> list[str]:
    """Hydra sets these around the task function, in this process or in a worker."""
    return [f"++hydra.job.env_set.{k}={quoted(v)}" for k, v in ref.to_env().items()]


def fail_abandoned_trials(study: optuna.Study) -> None:
    """Trials still RUNNING when a sweep starts were left by a process that died: mark them FAIL
    so that they are not counted and their job numbers are not reused."""
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study._storage.set_trial_user_attr(t._trial_id, "fail_reason",
                                           "left running by a process that stopped")
        study.tell(t.number, state=TrialState.FAIL)
        log.warning("Trial %d was left running by an earlier process: marked failed", t.number)


def count_finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def next_job_number(study: optuna.Study, sweep_dir: Path) -> int:
    """One past the highest job number the study or the sweep dir has used: never overwrite."""
    used = [n for t in study.get_trials(deepcopy=False) for n in t.user_attrs.get("job_nums", [])]
    used += [int(p.name) for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit()]
    return max(used, default=-1) + 1


def _job_nums(first_job: int, k: int, n_seeds: int) -> list[int]:
    """The job numbers of the k-th trial of a batch that starts at first_job."""
    return list(range(first_job + k * n_seeds, first_job + (k + 1) * n_seeds))


def _output_dir(job: JobReturn) -> str | None:
    return OmegaConf.select(job.hydra_cfg, "hydra.runtime.output_dir") if job.hydra_cfg else None


def _json_safe(rows: list[list[Any]]) -> list[list[Any]]:
    return [[v if isinstance(v, (int, float)) and math.isfinite(v) else None for v in row]
            for row in rows]


def _container(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


def _directions(direction: Any) -> list[str]:
    directions = [direction] if isinstance(direction, str) else list(_container(direction))
    for d in directions:
        _require(d in ("minimize", "maximize"), "direction", d, "must be minimize or maximize")
    return directions


def _is_grid(sampler_cfg: dict) -> bool:
    return str(sampler_cfg.get("_target_", "")).endswith("GridSampler")


def _instantiate(what: str, cfg: dict) -> Any:
    try:
        return instantiate(cfg)
    except Exception as err:  # noqa: BLE001 - missing extras (cmaes, scipy) land here
        cause = err.__cause__ or err
        reason = re.sub(r"\s+", " ", str(cause)).strip()
        raise SweeperConfigError(f"{what} {cfg.get('_target_')!r} cannot be created: {reason}") from err


def _require(ok: bool, key: str, value: Any, what: str) -> None:
    if not ok:
        raise SweeperConfigError(f"hydra.sweeper.{key}={value!r} {what}")


__all__ = ["OptunaSweeperImpl", "SweeperConfigError", "FailureRateExceeded", "SearchSpaceError"]
