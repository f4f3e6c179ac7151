"""Config schema of `hydra/sweeper=optuna` and its `sampler` / `pruner` groups.

The keys of hydra-optuna-sweeper are kept (sampler, direction, storage, study_name, n_trials,
n_jobs, max_failure_rate, params); the rest is new. Samplers and pruners are `_target_` configs,
so any argument of the Optuna class can be set: hydra.sweeper.sampler.seed=0.
"""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

SWEEPER_TARGET = "hydra_plugins.rnnexp_optuna_sweeper.optuna_sweeper.OptunaSweeper"


# ------------------------------------------------------------------------------ samplers
@dataclass
class TPESamplerConfig:
    _target_: str = "optuna.samplers.TPESampler"
    seed: Optional[int] = None
    consider_prior: Optional[bool] = None  # deprecated by Optuna 5; None keeps its default
    prior_weight: Optional[float] = None
    consider_magic_clip: Optional[bool] = None
    consider_endpoints: Optional[bool] = None
    n_startup_trials: int = 10
    n_ei_candidates: int = 24
    # false, false: hydra-optuna-sweeper's values, so a seeded study asks what it asked there
    # (Optuna 5's own defaults are multivariate for one objective and constant_liar: rnnexp-train
    # takes those, through its hydra/sweeper/sampler/tpe.yaml)
    multivariate: Optional[bool] = False
    group: bool = False  # with multivariate: the right choice for conditional spaces
    warn_independent_sampling: Optional[bool] = None
    # true: running trials count as bad, so the n_jobs asks of one batch do not all land together
    constant_liar: bool = False
    constraints_func: Optional[Any] = None  # a config that instantiates to the callable


@dataclass
class RandomSamplerConfig:
    _target_: str = "optuna.samplers.RandomSampler"
    seed: Optional[int] = None


@dataclass
class CmaEsSamplerConfig:  # needs the `cmaes` package
    _target_: str = "optuna.samplers.CmaEsSampler"
    x0: Optional[Dict[str, Any]] = None
    sigma0: Optional[float] = None
    n_startup_trials: int = 1
    warn_independent_sampling: bool = True
    seed: Optional[int] = None
    consider_pruned_trials: bool = False
    restart_strategy: Optional[str] = None
    popsize: Optional[int] = None
    inc_popsize: int = -1
    use_separable_cma: bool = False
    with_margin: bool = False
    lr_adapt: bool = False
    # a sampler config of its own (`_target_: optuna.samplers.RandomSampler`, ...), instantiated
    independent_sampler: Optional[Any] = None
    source_trials: Optional[Any] = None  # e.g. {_target_: hydra.utils.get_method, path: ...}


@dataclass
class GPSamplerConfig:  # needs scipy
    _target_: str = "optuna.samplers.GPSampler"
    seed: Optional[int] = None
    n_startup_trials: int = 10
    deterministic_objective: bool = False
    warn_independent_sampling: bool = True
    independent_sampler: Optional[Any] = None
    # a callable, given as a config: {_target_: hydra.utils.get_method, path: my_module.constraints}
    constraints_func: Optional[Any] = None


@dataclass
class QMCSamplerConfig:  # needs scipy
    _target_: str = "optuna.samplers.QMCSampler"
    qmc_type: str = "sobol"
    scramble: bool = False
    seed: Optional[int] = None
    warn_asynchronous_seeding: bool = True
    warn_independent_sampling: bool = True
    independent_sampler: Optional[Any] = None


@dataclass
class GridSamplerConfig:
    _target_: str = "optuna.samplers.GridSampler"
    search_space: Optional[Dict[str, Any]] = None  # None: the grid of `params`
    seed: Optional[int] = None


@dataclass
class NSGAIISamplerConfig:
    _target_: str = "optuna.samplers.NSGAIISampler"
    population_size: int = 50
    mutation_prob: Optional[float] = None
    crossover_prob: float = 0.9
    swapping_prob: float = 0.5
    seed: Optional[int] = None
    constraints_func: Optional[Any] = None


@dataclass
class MOTPESamplerConfig:
    """hydra-optuna-sweeper's `motpe`, kept so its configs compose: Optuna 4 removed the sampler,
    and the sweeper says so in one line (TPESampler handles several objectives itself)."""
    _target_: str = "optuna.samplers.MOTPESampler"
    seed: Optional[int] = None
    consider_prior: bool = True
    prior_weight: float = 1.0
    consider_magic_clip: bool = True
    consider_endpoints: bool = False
    n_startup_trials: int = 10
    n_ehvi_candidates: int = 24


# ------------------------------------------------------------------------------ pruners
@dataclass
class MedianPrunerConfig:
    _target_: str = "optuna.pruners.MedianPruner"
    n_startup_trials: int = 5
    n_warmup_steps: int = 0
    interval_steps: int = 1
    n_min_trials: int = 1


@dataclass
class PercentilePrunerConfig:
    _target_: str = "optuna.pruners.PercentilePruner"
    percentile: float = 25.0
    n_startup_trials: int = 5
    n_warmup_steps: int = 0
    interval_steps: int = 1
    n_min_trials: int = 1


@dataclass
class SuccessiveHalvingPrunerConfig:
    _target_: str = "optuna.pruners.SuccessiveHalvingPruner"
    min_resource: Any = "auto"
    reduction_factor: int = 4
    min_early_stopping_rate: int = 0
    bootstrap_count: int = 0


@dataclass
class HyperbandPrunerConfig:
    _target_: str = "optuna.pruners.HyperbandPruner"
    min_resource: int = 1
    max_resource: Any = "auto"
    reduction_factor: int = 3
    bootstrap_count: int = 0


@dataclass
class NopPrunerConfig:
    _target_: str = "optuna.pruners.NopPruner"


# ------------------------------------------------------------------------------ the sweeper
@dataclass
class OptunaSweeperConf:
    _target_: str = SWEEPER_TARGET
    _recursive_: bool = False  # the sweeper builds sampler and pruner itself (grid, study attrs)
    defaults: List[Any] = field(default_factory=lambda: [{"sampler": "tpe"}, {"pruner": "none"}])

    sampler: Any = MISSING
    pruner: Any = MISSING
    direction: Any = "minimize"  # minimize | maximize | a list of them (multi-objective)
    # None or "memory": in memory, as hydra-optuna-sweeper ("journal": the journal file
    # results/studies/<study_name>.log, rnnexp-train's default); an RDB URL; a journal file path
    storage: Optional[str] = None
    # None: a new study "<job name>-<date>-<time>"; name it to resume it later
    study_name: Optional[str] = None
    n_trials: int = 20  # finished trials (complete + pruned) the study should reach
    n_jobs: int = 2  # trials asked and launched together, as one launcher batch
    # as hydra-optuna-sweeper: the sweep stops after a batch in which more than this fraction
    # of the trials failed, raising the first job's own error (1.0: never)
    max_failure_rate: float = 0.0
    params: Dict[str, Any] = field(default_factory=dict)
    # parent -> parent value -> {child key: grammar}
    conditional: Dict[str, Any] = field(default_factory=dict)

    # a metric key of the job's returned dict, or a Python expression over its keys; a list of
    # them for multi-objective (one per direction). null, as in hydra-optuna-sweeper: the job's
    # return value is the objective (a number; a sequence, or a dict of one number per direction,
    # for several). rnnexp-train's hydra/sweeper/optuna.yaml sets final_loss
    objective: Any = None
    seeds: Optional[List[int]] = None  # each trial runs one job per seed: `<seed_key>=<seed>`
    seed_key: str = "seed"
    aggregate: str = "mean"  # mean | median | min | max over the seeds of a trial
    # epochs between two loss reports of a trial's lead seed; null: every 10 epochs when a
    # pruner reads them, none at all with the `none` pruner (set it to watch the losses of a
    # study without pruning, e.g. in optuna-dashboard)
    report_every: Optional[int] = None
    forbid: List[str] = field(default_factory=list)  # keys the search space must not vary
    results_dir: Optional[str] = None  # also copy the end-of-study files here
    # the end-of-study plots (the last worker draws them): null for optimization_history, slice
    # and (2 or 3 objectives) pareto_front; add param_importances to a list to have it (fANOVA
    # costs seconds); [] for none
    plots: Optional[List[str]] = None
    # as hydra-optuna-sweeper: the dotted path of a function (cfg, trial) called for every trial
    # after `params`, which may suggest more parameters (bounds that depend on another one); a
    # leading dot resolves next to the app's script. Each parameter it suggests is an override.
    custom_search_space: Optional[str] = None
    # with the batched launcher (hydra.launcher.threads=1) and no pruner: each batch trains in a
    # second process while the next batch is asked, so that sampler and training use two cores.
    # A batch is then asked with the one before it still running (TPE's constant_liar sees it
    # so); false: each batch is asked once the last one is told, as hydra-optuna-sweeper does
    overlap: bool = True

    # several workers on one study (docs/scaling.md): RDB storage records a heartbeat of each
    # running trial every heartbeat_interval seconds (null: off); a trial without one for
    # grace_period seconds (null: 2 * heartbeat_interval) is failed and queued again, at most
    # max_retry times (null: always). Journal files check the worker's process instead.
    heartbeat_interval: Optional[int] = 60
    grace_period: Optional[int] = None
    max_retry: Optional[int] = 3


def register_configs() -> None:
    cs = ConfigStore.instance()
    # the schema; `hydra/sweeper=optuna` itself is a YAML file on the search path (conf/, added
    # by searchpath.py) that an app can shadow with its own defaults
    cs.store(group="hydra/sweeper", name="optuna_schema", node=OptunaSweeperConf, provider="rnnexp")
    # likewise `hydra/sweeper/sampler=tpe` (conf/hydra/sweeper/sampler/tpe.yaml) over its schema
    cs.store(group="hydra/sweeper/sampler", name="tpe_schema", node=TPESamplerConfig,
             provider="rnnexp")
    samplers = {
        "random": RandomSamplerConfig,
        "cmaes": CmaEsSamplerConfig,
        "gp": GPSamplerConfig,
        "qmc": QMCSamplerConfig,
        "grid": GridSamplerConfig,
        "nsgaii": NSGAIISamplerConfig,
        "motpe": MOTPESamplerConfig,
    }
    for name, node in samplers.items():
        cs.store(group="hydra/sweeper/sampler", name=name, node=node, provider="rnnexp")
    pruners = {
        "median": MedianPrunerConfig,
        "percentile": PercentilePrunerConfig,
        "successive_halving": SuccessiveHalvingPrunerConfig,
        "hyperband": HyperbandPrunerConfig,
        "none": NopPrunerConfig,
    }
    for name, node in pruners.items():
        cs.store(group="hydra/sweeper/pruner", name=name, node=node, provider="rnnexp")


register_configs()
