"""The Optuna sweeper: ask a batch of trials, launch their jobs together, tell the outcomes.

One study lives in a persistent storage; running the same command again (same storage and
study_name) resumes it: only the trials still missing to reach n_trials are run. The same command
started in several places (processes, machines) fills one study together: each worker re-counts
the study before every ask, job dirs are named by trial number (unique in the study), and trials of
a worker that died are failed and queued again (see _workers.py).
"""
from __future__ import annotations

import importlib.util
import logging
import math
import os
import re
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Sequence

import optuna
from hydra._internal.core_plugins.basic_launcher import BasicLauncher
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from optuna.storages._heartbeat import is_heartbeat_enabled
from optuna.trial import TrialState

from rnnexp.errors import require
from rnnexp.results import atomic_path, json_safe
from rnnexp.runner import interrupts_held
from rnnexp.sweeps.grammar import hydra_value
from rnnexp.tuning.hooks import PRUNER_ATTR, TrialRef, register_live_trial, unregister_live_trial
from rnnexp.tuning.outputs import (DEFAULT_PLOTS, PLOTS, copy_results, plotting_preloaded,
                                   preload_plotting, results_are_current, write_plots,
                                   write_tables)
from rnnexp.tuning.storage import appending, is_rdb_url, open_storage, resolve_storage

from ._lost import LostJob, is_submitit, lost_jobs_returned
from ._objective import Objective, Outcome
from hydra_plugins.rnnexp_batched_launcher._background import (BackgroundLaunches,
                                                                can_run_in_background, is_batched)
from ._search_space import (
    SearchSpace,
    SearchSpaceError,
    build_search_space,
    check_forbidden,
    quoted,
)
from ._workers import (
    WORKER_ATTR,
    ask,
    beyond_total,
    can_watch,
    fail_trial,
    heartbeats,
    reap_dead_trials,
    retry_callback,
    this_worker,
)

log = logging.getLogger(__name__)

DEFAULT_STUDY_DIR = Path("results/studies")
SAMPLER_PACKAGES = {"GPSampler": "scipy", "QMCSampler": "scipy", "CmaEsSampler": "cmaes"}
REMOVED_SAMPLERS = {  # samplers hydra-optuna-sweeper offers that current Optuna no longer has
    "MOTPESampler": "hydra/sweeper/sampler=motpe: Optuna 4 removed MOTPESampler; use "
                    "hydra/sweeper/sampler=tpe, whose TPESampler handles several objectives, or "
                    "hydra/sweeper/sampler=nsgaii",
}
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
DEFAULT_GRACE_PERIOD = 120  # seconds; without heartbeats: age of a RUNNING trial with no worker
STUDY_MARKER = ".optuna_study"  # in the sweep dir: the study whose job dirs it holds
POLL_S = 0.5  # while the last trials run in other workers
DEFAULT_REPORT_EVERY = 10  # epochs, when a pruner reads the reports
# samplers whose asks depend on nothing but their own seed (not on the study's trials): asking
# several batches at once draws the same trials as asking them one batch at a time
HISTORY_FREE_SAMPLERS = ("RandomSampler",)
MERGED_MEMBERS = 1024  # jobs per launch when parts of n_jobs trials are merged (batched launcher)


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
        report_every: int | None,
        forbid: Sequence[str],
        results_dir: str | None,
        heartbeat_interval: int | None = 60,
        grace_period: int | None = None,
        max_retry: int | None = 3,
        plots: Sequence[str] | None = None,
        custom_search_space: str | None = None,
        overlap: bool = True,
    ) -> None:
        _require(n_trials >= 1, "n_trials", "must be at least 1", n_trials)
        _require(n_jobs >= 1, "n_jobs", "must be at least 1", n_jobs)
        _require(0 <= max_failure_rate <= 1, "max_failure_rate", "must be between 0 and 1",
                 max_failure_rate)
        _require(report_every is None or report_every >= 1, "report_every",
                 "must be null or at least 1", report_every)
        _require(heartbeat_interval is None or heartbeat_interval >= 1, "heartbeat_interval",
                 "must be null or at least 1 (seconds)", heartbeat_interval)
        _require(grace_period is None or grace_period >= 1, "grace_period",
                 "must be null or at least 1 (seconds)", grace_period)
        _require(max_retry is None or max_retry >= 0, "max_retry", "must be null or at least 0",
                 max_retry)
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
        self.objective = Objective(objective, len(self.directions), aggregate)
        self.seeds: list[int | None] = list(seeds) if seeds else [None]
        _require(len(set(self.seeds)) == len(self.seeds), "seeds", "has duplicates", seeds)
        self.seed_key = seed_key
        prunes = not str(self.pruner_cfg.get("_target_", "")).endswith("NopPruner")
        # loss reports are written only where something reads them (each is a storage write)
        self.report_every = report_every or (DEFAULT_REPORT_EVERY if prunes else None)
        self.forbid = list(forbid)
        self.results_dir = results_dir
        self.heartbeat_interval = heartbeat_interval
        self.grace_period = grace_period or (2 * heartbeat_interval if heartbeat_interval
                                             else DEFAULT_GRACE_PERIOD)
        self.retry = retry_callback(max_retry)
        self.custom_search_space = custom_search_space
        self.overlap = bool(overlap)
        self._per_launch = n_jobs  # trials asked and launched together (_trials_per_launch)
        self._history_free = False  # the sampler's asks never read the study's trials
        self._name_dirs = True  # job dirs named by job number (_job_subdirs), read per sweep
        self._extender = None  # the function custom_search_space names, found at the sweep
        self.plots = DEFAULT_PLOTS if plots is None else list(plots)
        unknown = [name for name in self.plots if name not in PLOTS]
        _require(not unknown, "plots", f"must name plots out of {', '.join(PLOTS)}", plots)
        self.timer = PhaseTimer()
        self._validated = False  # the first batch's jobs were composed by Hydra's check
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
        # started first: the training process imports what launches need (torch) meanwhile;
        # never forked while an earlier sweep of this process still imports its plotting
        plotting_preloaded()
        background = self._background_launches()
        if background is not None:  # this process waits for the trainer: import meanwhile
            preload_plotting(self.plots)
        try:
            return self._sweep(arguments, background)
        finally:
            if background is not None:
                background.close()

    def _sweep(self, arguments: list[str], background: BackgroundLaunches | None) -> optuna.Study:
        space = self._search_space(arguments)
        if self.custom_search_space:
            self._extender = find_function(self.custom_search_space)
        study, storage_url = self._open_study(space)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        claim_sweep_dir(sweep_dir, study.study_name)
        _save_atomically(self.config, sweep_dir / "multirun.yaml")

        n_trials = self._n_trials_for(space)
        self._per_launch = self._trials_per_launch(study)
        self._name_dirs = self._job_subdirs()
        reap_dead_trials(study, self.retry, self.grace_period)
        needed = n_trials - count_finished(study)
        log.info("Study %r in %s: %d of %d trials to run", study.study_name, storage_url,
                 max(needed, 0), n_trials)
        if needed <= 0 and not study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            log.warning("Study %r in %s already has its %d trials: nothing to run. Raise "
                        "hydra.sweeper.n_trials to extend it, or set hydra.sweeper.study_name "
                        "(or hydra.sweeper.storage) to start a new study", study.study_name,
                        storage_url, n_trials)
        stopped = True  # by an error: write what the study has
        try:
            self._sweep_batches(study, storage_url, space, n_trials, background)
            stopped = False
        finally:
            if background is not None:
                background.close()  # its work is done: free its memory before the plots
            if stopped or not self._others_still_run(study):
                self._write_results(study, sweep_dir)
            log.info("%s", self.timer.line())
        return study

    def _sweep_batches(self, study: optuna.Study, storage_url: str, space: SearchSpace,
                       n_trials: int, background: BackgroundLaunches | None) -> None:
        """Ask, launch and tell batch after batch until the study has n_trials.

        With `background`, a batch trains in its process while the next one is asked here: batch
        k + 1 is asked with batch k running (a sampler's constant liar sees it so), then batch k is
        told and batch k + 1 handed over. A sampler that never reads the study's trials (random
        search) draws the same trials however many are running, so there batch k + 1 is also
        launched here, beside batch k, and the two are told together. Without `background`, each
        batch is asked once the last one is told."""
        pending: Batch | None = None  # launched in the background, not told yet
        untold: list[Batch] = []  # asked and not told: failed if the sweep stops
        two_lanes = background is not None and self._history_free

        def tell(batch: Batch, returns: Sequence[JobReturn]) -> list[Outcome]:
            outcomes = self._tell_batch(study, batch, returns)
            untold.remove(batch)
            return outcomes

        try:
            while True:
                # the storage holds an asked trial as RUNNING from inside study.ask(): an
                # interrupt waits until the batch is in `untold`, where the handler below finds it
                with interrupts_held():
                    trials = self._timed("ask", lambda: self._ask_batch(study, n_trials))
                    asked = self._timed(
                        "ask", lambda: self._prepare(study, storage_url, space, trials)
                    ) if trials else None
                    if asked is not None:
                        untold.append(asked)
                if two_lanes and pending is not None and asked is not None:
                    here = self._timed("launch", lambda: self._launch(asked))
                    there = self._timed("launch", background.result)
                    # told in the order they were asked, both before either is held to
                    # max_failure_rate: both ran
                    outcomes = [tell(pending, there), tell(asked, here)]
                    pending = None
                    for batch_outcomes in outcomes:
                        self._check_failure_rate(batch_outcomes, study)
                    continue
                told = pending is not None
                if pending is not None:
                    outcomes = tell(pending, self._timed("launch", background.result))
                    pending = None
                    self._check_failure_rate(outcomes, study)
                if trials is None:
                    return
                if asked is None:
                    if not told:
                        time.sleep(POLL_S)  # the last trials run in other workers
                    continue
                if background is not None:
                    self._timed("launch", lambda: background.submit(asked.lines, asked.first_job))
                    pending = asked
                else:
                    returns = self._timed("launch", lambda: self._launch(asked))
                    self._check_failure_rate(tell(asked, returns), study)
        except BaseException as err:
            for batch in untold:  # never leave a trial RUNNING behind us
                batch.fail_untold(study, f"{type(err).__name__}: {err}")
            raise

    def _extended(self, trial: optuna.Trial) -> list[str]:
        """The override lines of the parameters custom_search_space suggests for this trial."""
        before = set(trial.params)
        self._extender(self.config, trial)
        return [f"{name}={hydra_value(value)}" for name, value in trial.params.items()
                if name not in before]

    def _check_failure_rate(self, outcomes: list[Outcome], study: optuna.Study) -> None:
        """As hydra-optuna-sweeper: when more than max_failure_rate of a batch's trials failed,
        the sweep stops, raising the first job's own exception (or, where no job raised, a
        FailureRateExceeded naming the reasons). Trials launched together in several batches of
        n_jobs (random search) are told first, since they all ran; each batch is then held to the
        rate in turn."""
        for part in range(0, len(outcomes), self.n_jobs):
            self._check_part(outcomes[part : part + self.n_jobs], study)

    def _check_part(self, outcomes: list[Outcome], study: optuna.Study) -> None:
        sweep_dir = Path(self.config.hydra.sweep.dir)
        # a job the cluster lost is asked again, not counted against the study
        failed = [o for o in outcomes
                  if o.state == TrialState.FAIL and not isinstance(o.error, LostJob)]
        if len(failed) <= self.max_failure_rate * len(outcomes):
            return
        log.error("%d of %d trials of the batch failed, more than max_failure_rate=%s: study %r "
                  "stopped (fail_reason in %s)", len(failed), len(outcomes), self.max_failure_rate,
                  study.study_name, sweep_dir / "trials.csv")
        error = next((o.error for o in failed if o.error is not None), None)
        if error is not None:
            raise error
        raise FailureRateExceeded(
            f"{len(failed)} of {len(outcomes)} trials of a batch failed, more than "
            f"max_failure_rate={self.max_failure_rate}: {failed[0].reason}")

    def _timed(self, phase: str, work):
        start = time.perf_counter()
        try:
            return work()
        finally:
            self.timer.add(phase, time.perf_counter() - start)

    def _others_still_run(self, study: optuna.Study) -> bool:
        """Trials of other workers still running: the last worker to finish writes the results
        (writing them takes seconds, and each worker would write the same files)."""
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if running:
            log.info("Trials %s still run in other workers; the last of them writes the study's "
                     "results", [t.number for t in running])
        return bool(running)

    def _ask_batch(self, study: optuna.Study, n_trials: int) -> list[optuna.Trial] | None:
        """Up to n_jobs trials that the study still misses, counted afresh from the storage;
        [] when the rest runs in other workers that may yet die; None when this worker is done."""
        reap_dead_trials(study, self.retry, self.grace_period)
        finished = count_finished(study)
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if finished >= n_trials:
            for trial in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
                # a retry queued after the other trials already made the total: never to run
                fail_trial(study, trial, f"not run: the study already had n_trials={n_trials} trials")
            return None
        free = n_trials - finished - len(running)
        if free <= 0:
            unwatched = [t.number for t in running if not can_watch(study, t)]
            if unwatched:  # no heartbeat and on another host: their end cannot be awaited
                log.info("Trials %s run in workers on other hosts; this worker stops", unwatched)
                return None
            return []
        trials: list[optuna.Trial] = []
        try:
            for _ in range(min(self._per_launch, free)):
                trials.append(ask(study))
        except BaseException as err:  # the storage error of one ask fails those asked before it
            for trial in trials:
                _fail_if_running(study, trial, f"{type(err).__name__}: {err}")
            raise
        extra = beyond_total(study, trials, n_trials)
        for trial in extra:  # other workers asked at the same moment and rank first
            fail_trial(study, trial, f"not run: the study already had n_trials={n_trials} trials")
        return [t for t in trials if t not in extra]

    def _trials_per_launch(self, study: optuna.Study) -> int:
        """n_jobs; with the batched launcher and a sampler that never reads the study's trials
        (random search), several parts of n_jobs trials as one launch of about MERGED_MEMBERS
        jobs, where a stacked batch costs hardly more than one of n_jobs: the sampler draws the
        same trials, and each part of n_jobs is still checked against max_failure_rate. Not with
        a pruner: which trials run beside each other is part of its decisions. Not on a storage
        with heartbeats, whose workers share a study across machines: there one worker would
        take the trials of all, each with a heartbeat thread of its own."""
        cls = str(self.sampler_cfg.get("_target_", "")).rsplit(".", 1)[-1]
        self._history_free = (cls in HISTORY_FREE_SAMPLERS and self.report_every is None
                              and is_batched(self.launcher)
                              and not is_heartbeat_enabled(study._storage))
        if not self._history_free:
            return self.n_jobs
        return self.n_jobs * max(1, MERGED_MEMBERS // (self.n_jobs * len(self.seeds)))

    def _job_subdirs(self) -> bool:
        """Whether job dirs are the default `<sweep dir>/<job number>`: then this sweeper names
        them by trial number, so workers sharing a sweep dir never pick the same one."""
        assert self.config is not None
        sweep = OmegaConf.to_container(self.config.hydra.sweep, resolve=False)
        return sweep.get("subdir") == "${hydra.job.num}"

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
        heartbeat = {}
        if is_rdb_url(url) and self.heartbeat_interval:  # Optuna has heartbeats on RDB only
            heartbeat = dict(heartbeat_interval=self.heartbeat_interval,
                             grace_period=self.grace_period, stale_trial_callback=self.retry)
        study = optuna.create_study(
            storage=open_storage(url, **heartbeat),
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
        # jobs in other processes rebuild the pruner from here (see rnnexp.tuning.hooks)
        attrs = {PRUNER_ATTR: self.pruner_cfg}
        if self.seeds != [None]:
            attrs["seeds"] = self.seeds  # each trial's seed_values are in this order
        for key, value in attrs.items():
            if study.user_attrs.get(key) != value:  # each write is a storage record
                study.set_user_attr(key, value)
        return study, url

    def _make_sampler(self, space: SearchSpace) -> optuna.samplers.BaseSampler:
        target = str(self.sampler_cfg.get("_target_"))
        cls = target.rsplit(".", 1)[-1]
        if cls in REMOVED_SAMPLERS:
            raise SweeperConfigError(REMOVED_SAMPLERS[cls])
        package = SAMPLER_PACKAGES.get(cls)
        if package and importlib.util.find_spec(package) is None:
            raise SweeperConfigError(f"sampler {target!r} needs the package {package!r}: "
                                     f"pip install {package}")
        if _is_grid(self.sampler_cfg):
            cfg = {**self.sampler_cfg, "search_space": self._grid(space),
                   "_target_": f"{__name__}.AskTellGridSampler"}
            return _instantiate("sampler", cfg)
        return _instantiate("sampler", self.sampler_cfg)

    # ------------------------------------------------------------------------------ one batch
    def _prepare(self, study: optuna.Study, storage_url: str, space: SearchSpace,
                 trials: list[optuna.Trial]) -> "Batch":
        """Suggest the trials' params and build their jobs' override lines (counted as asking)."""
        batch = Batch(trials, [], job_nums(trials[0].number, len(self.seeds))[0])
        try:
            batch.stack.enter_context(heartbeats(study, trials))
            with appending(study._storage):  # a journal file's lock, once for the batch
                self._fill(batch, study, storage_url, space)
        except BaseException as err:
            batch.fail_untold(study, f"{type(err).__name__}: {err}")
            raise
        return batch

    def _fill(self, batch: "Batch", study: optuna.Study, storage_url: str,
              space: SearchSpace) -> None:
        worker = this_worker()
        name_dirs = self._name_dirs
        n_seeds = len(self.seeds)
        for trial in batch.trials:
            trial.set_user_attr(WORKER_ATTR, worker)
            overrides = space.suggest(trial)
            if self._extender is not None:
                overrides += self._extended(trial)
            nums = job_nums(trial.number, n_seeds)
            trial.set_user_attr("job_nums", nums)
            for i, seed in enumerate(self.seeds):
                hook = []  # how the job finds its trial to report to: only if it reports
                if self.report_every is not None:
                    ref = TrialRef(storage_url, study.study_name, trial.number, lead=i == 0,
                                   report_every=self.report_every)
                    register_live_trial(ref, trial)
                    batch.stack.callback(unregister_live_trial, ref)
                    hook = env_overrides(ref)
                seed_override = [] if seed is None else [f"{self.seed_key}={seed}"]
                # the launcher numbers the batch's jobs from first_job: a job whose trial
                # number gives another (other workers asked the numbers between) is named
                subdir = ([f"++hydra.sweep.subdir={nums[i]}"]
                          if name_dirs and nums[i] != batch.first_job + len(batch.lines) else [])
                batch.lines.append(overrides + seed_override + subdir + hook)
        if not isinstance(self.launcher, BasicLauncher) and not self._validated:
            # a key the config does not have, or a value of the wrong type, stops the sweep
            # here with Hydra's own message, not as failed trials in another process. The
            # first batch shows it, composing each of its override lines once: later batches
            # vary the same keys (composing every job again would cost as much as launching
            # it in-process)
            self.validate_batch_is_legal(covering_jobs(batch.lines))
            self._validated = True

    def _launch(self, batch: "Batch") -> Sequence[JobReturn]:
        with lost_jobs_returned(is_submitit(self.launcher)):  # a lost job fails one trial
            return self.launcher.launch(batch.lines, initial_job_idx=batch.first_job)

    def _tell_batch(self, study: optuna.Study, batch: "Batch",
                    returns: Sequence[JobReturn]) -> list[Outcome]:
        """Tell each trial of the batch its outcome."""
        start = time.perf_counter()
        n_seeds = len(self.seeds)
        name_dirs = self._name_dirs
        sweep_dir = os.path.abspath(self.config.hydra.sweep.dir)
        outcomes = []
        try:
            with appending(study._storage):  # a journal file's lock, once for the batch
                for k, trial in enumerate(batch.trials):
                    jobs = list(returns[k * n_seeds : (k + 1) * n_seeds])
                    # the job dirs follow from the sweep dir and the job numbers: no job's Hydra
                    # config is built to read them
                    dirs = ([os.path.join(sweep_dir, str(n)) for n in job_nums(trial.number, n_seeds)]
                            if name_dirs else [_output_dir(j) for j in jobs])
                    outcomes.append(self._tell(study, trial, jobs, dirs))
                    batch.told.add(trial.number)
        except BaseException as err:
            batch.fail_untold(study, f"{type(err).__name__}: {err}")
            raise
        finally:
            batch.stack.close()
            self.timer.add("tell", time.perf_counter() - start)
        self.timer.trials += len(batch.trials)
        return outcomes

    def _background_launches(self) -> BackgroundLaunches | None:
        """The launches' own process, where batches may train while the next is asked: with
        hydra.sweeper.overlap, the batched launcher, and no loss reports (a pruner reads them
        from the storage while the trial runs; its decisions are kept to one process)."""
        if not self.overlap or self.report_every is not None:
            return None
        why_not = can_run_in_background(self.launcher)
        if why_not is not None:
            log.debug("batches are asked and launched in turn: %s", why_not)
            return None
        self.timer.overlapped = True
        return BackgroundLaunches(self.launcher)

    def _tell(self, study: optuna.Study, trial: optuna.Trial, jobs: list[JobReturn],
              job_dirs: list[str | None]) -> Outcome:
        outcome = self.objective.outcome(jobs, self.seeds)
        trial.set_user_attr("job_dirs", job_dirs)
        if self.seeds != [None]:  # the seeds themselves are a study attr (_open_study)
            trial.set_user_attr("seed_values", json_safe(outcome.seed_values))
        if outcome.state == TrialState.FAIL:
            log.warning("Trial %d failed: %s", trial.number, outcome.reason)
            trial.set_user_attr("fail_reason", outcome.reason[:500])
            study.tell(trial, state=TrialState.FAIL)
            if isinstance(outcome.error, LostJob):  # the cluster lost it: the same params again
                self.retry(study, study._storage.get_trial(trial._trial_id))
        elif outcome.state == TrialState.PRUNED:
            study.tell(trial, state=TrialState.PRUNED)
        else:
            study.tell(trial, outcome.values)
        return outcome

    def _write_results(self, study: optuna.Study, sweep_dir: Path) -> None:
        if self.timer.trials == 0 and results_are_current(study, sweep_dir):
            log.info("Study %r: nothing new to run; its files in %s are current",
                     study.study_name, sweep_dir)
        else:
            paths = self._timed("files", lambda: write_tables(study, sweep_dir))
            paths += self._timed("plots", lambda: write_plots(
                study, sweep_dir, self.objective.names, self.plots))
            if self.results_dir:
                copy_results(paths, Path(self.results_dir))
        if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            return
        if len(study.directions) == 1:
            best = study.best_trial
            log.info("Best trial %d: value %s, params %s", best.number, best.value, best.params)
            return
        pareto = study.best_trials
        log.info("Number of Pareto solutions: %d", len(pareto))
        for t in pareto:
            log.info("    trial %d: values %s, params %s", t.number, t.values, t.params)


# ---------------------------------------------------------------------------------- helpers
@dataclass
class Batch:
    """Trials asked together and their jobs' override lines, from their ask until they are told;
    `stack` holds what lasts as long (heartbeat threads, live-trial registrations)."""
    trials: list[optuna.Trial]
    lines: list[list[str]]
    first_job: int  # the launcher numbers the jobs from here
    told: set[int] = field(default_factory=set)
    stack: ExitStack = field(default_factory=ExitStack)

    def fail_untold(self, study: optuna.Study, reason: str) -> None:
        """Fail the trials not told yet (never leave one RUNNING) and end what the batch holds."""
        try:
            for trial in self.trials:
                if trial.number not in self.told:
                    _fail_if_running(study, trial, reason)
        finally:
            self.stack.close()


class PhaseTimer:
    """Where a sweep spends its time: ask (sampler, storage, suggesting params), launch (the
    launcher: compose, train, run files; with launches in a second process, only the time spent
    waiting for them, and launching here beside them), tell (objective, storage), files (results
    YAML and CSV), plots."""

    PHASES = ("ask", "launch", "tell", "files", "plots")

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(self.PHASES, 0.0)
        self.trials = 0  # launched by this sweep
        self.overlapped = False  # batches trained in a second process while the next was asked

    def add(self, phase: str, seconds: float) -> None:
        self.seconds[phase] += seconds

    def line(self) -> str:
        per = lambda s: f"{1e3 * s / self.trials:.1f} ms/trial" if self.trials else "-"  # noqa: E731
        parts = [f"{p} {self.seconds[p]:.2f} s ({per(self.seconds[p])})"
                 for p in ("ask", "launch", "tell")]
        if self.overlapped:
            parts[1] += ", with batches trained in a second process meanwhile"
        return (f"Optuna sweeper: {self.trials} trials run; {', '.join(parts)}; files "
                f"{self.seconds['files']:.2f} s, plots {self.seconds['plots']:.2f} s")


class AskTellGridSampler(optuna.samplers.GridSampler):
    """GridSampler calls Study.stop() once the grid is done, which raises outside optimize(); here
    the sweep loop ends by itself, n_trials being capped at the grid size."""

    def after_trial(self, study, trial, state, values) -> None:
        pass


def _fail_if_running(study: optuna.Study, trial: optuna.Trial, reason: str) -> None:
    fail_trial(study, trial, reason)  # False: told already, before the error


def env_overrides(ref: TrialRef) -> list[str]:
    """Hydra sets these around the task function, in this process or in a worker."""
    return [f"++hydra.job.env_set.{k}={quoted(v)}" for k, v in ref.to_env().items()]


def count_finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def job_nums(trial_number: int, n_seeds: int) -> list[int]:
    """The job numbers (and default job dir names) of a trial: unique because trial numbers are."""
    return list(range(trial_number * n_seeds, (trial_number + 1) * n_seeds))


def claim_sweep_dir(sweep_dir: Path, study_name: str) -> None:
    """Job dirs are named by trial number, so one sweep dir serves one study: a second study there
    would write into the first one's job dirs. The first worker writes the study's name into it."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    marker = sweep_dir / STUDY_MARKER
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        owner = marker.read_text().strip()
        if owner and owner != study_name:
            raise SweeperConfigError(
                f"hydra.sweep.dir={str(sweep_dir)!r} holds the job dirs of study {owner!r}; "
                f"give study {study_name!r} its own sweep dir") from None
        return
    with os.fdopen(fd, "w") as f:
        f.write(study_name + "\n")
    others = sorted(p.name for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit())
    if others:
        log.warning("sweep dir %s already holds job dirs %s of an earlier sweep; trial numbers "
                    "of study %r may reuse them", sweep_dir, others[:5], study_name)


def _save_atomically(config: DictConfig, path: Path) -> None:
    with atomic_path(path) as tmp:  # workers sharing a sweep dir write it at the same time
        OmegaConf.save(config, tmp)


def covering_jobs(batch: list[list[str]]) -> list[list[str]]:
    """The jobs of `batch` that compose each of its override lines at least once (in order, a job
    taken when it brings a line not seen yet), not counting the hydra.* lines the sweeper adds
    for each job (its subdir, its trial's variables): the first trial's jobs, one per seed, then
    one job of each other trial."""
    seen: set[str] = set()
    chosen = []
    for job in batch:
        lines = [line for line in job if not line.lstrip("+").startswith("hydra.")]
        if any(line not in seen for line in lines):
            chosen.append(job)
            seen.update(lines)
    return chosen


def find_function(path: str):
    """The function at a dotted path (`package.module.function`); a leading dot (`.module.fn`,
    as hydra-optuna-sweeper's example writes it) names a module next to the app's script, which
    Python puts first on sys.path. One line naming the key when it cannot be found."""
    import importlib

    module_name, _, name = path.lstrip(".").rpartition(".")
    try:
        if not module_name:
            raise ValueError("not a dotted path module.function")
        function = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError, ValueError) as err:
        raise SweeperConfigError(f"hydra.sweeper.custom_search_space={path!r}: cannot be found "
                                 f"({err})") from None
    if not callable(function):
        raise SweeperConfigError(f"hydra.sweeper.custom_search_space={path!r}: not a function")
    return function


def _output_dir(job: JobReturn) -> str | None:
    return OmegaConf.select(job.hydra_cfg, "hydra.runtime.output_dir") if job.hydra_cfg else None


def _container(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


def _directions(direction: Any) -> list[str]:
    directions = [direction] if isinstance(direction, str) else list(_container(direction))
    for d in directions:
        _require(d in ("minimize", "maximize"), "direction", "must be minimize or maximize", d)
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


def _require(ok: bool, key: str, rule: str, value: Any) -> None:
    require(ok, f"hydra.sweeper.{key}", rule, value, SweeperConfigError)


__all__ = ["OptunaSweeperImpl", "SweeperConfigError", "FailureRateExceeded", "SearchSpaceError"]
