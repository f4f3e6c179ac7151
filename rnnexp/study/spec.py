"""What the study file says, and how much of it each run of the study runs.

The study file (rnnexp/configs/sweeps/fastest_convergence.yaml) is a Hydra primary config that
rnnexp-train runs on its own. The study reads it composed, as rnnexp-train sees it, rather than
re-reading its defaults list: the model, sampler and every value come out resolved.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Optional

import yaml
from omegaconf import DictConfig, OmegaConf

from rnnexp.configs import SWEEPS_DIR, TABLES_DIR, TRAIN_DIR
from rnnexp.runner import StepFailed
from rnnexp.sweeps import hydra_value

STUDY_CONFIG = "fastest_convergence"  # configs/sweeps/fastest_convergence.yaml
BRANCH_CONFIG = "fastest_convergence_rmsprop"  # its RMSprop branch alone
# the table sweep of the report's hand-tuned answer to Q2(ii): its optimizer is the study's
# reference setting, so the two cannot drift apart
REPORT_SWEEP = "q2ii_tuned"
OBJECTIVE_NAME = "epochs, slowest seed"  # the objective in the plots (>budget: a seed failed)


class StudyError(StepFailed):
    """A step of the study that failed; the message says which and why. A StepFailed, so the
    failures of its rnnexp-train children and its own are caught alike."""


# ------------------------------------------------------------------------------ the study file
@lru_cache(maxsize=1)
def study_cfg() -> DictConfig:
    """The study file composed as `rnnexp-train -m --config-dir <sweeps> --config-name
    fastest_convergence` composes it, hydra node included; read-only, as it is shared."""
    from hydra import compose, initialize_config_dir

    from rnnexp.config import register_configs

    register_configs()  # the schemas its `defaults: - config` builds on
    # the study file is the primary config; its `config` default lives in the training configs
    with initialize_config_dir(config_dir=str(SWEEPS_DIR), version_base="1.3"):
        cfg = compose(STUDY_CONFIG, overrides=[f"hydra.searchpath=[file://{TRAIN_DIR}]"],
                      return_hydra_config=True)
    OmegaConf.set_readonly(cfg, True)
    return cfg


@dataclass(frozen=True)
class StudyFile:
    """The values of the study file the study's own steps need."""
    word: str
    model: str
    hidden_size: int
    epochs: int
    loss_below: float  # converge.loss_below: the threshold line of the loss plot
    n_trials: int
    n_jobs: int
    seeds: tuple[int, ...]  # every trial trains one run per seed
    n_startup_trials: int  # the sampler's random trials before its model


@lru_cache(maxsize=1)
def study_file() -> StudyFile:
    cfg = study_cfg()
    sweeper = cfg.hydra.sweeper
    return StudyFile(word=str(cfg.word), model=str(cfg.model.name),
                     hidden_size=int(cfg.model.hidden_size), epochs=int(cfg.train.epochs),
                     loss_below=float(cfg.converge.loss_below), n_trials=int(sweeper.n_trials),
                     n_jobs=int(sweeper.n_jobs), seeds=tuple(int(s) for s in sweeper.seeds),
                     n_startup_trials=int(sweeper.sampler.n_startup_trials))


@lru_cache(maxsize=1)
def _report_fixed() -> dict:
    path = TABLES_DIR / f"{REPORT_SWEEP}.yaml"
    return yaml.safe_load(path.read_text(encoding="utf-8"))["fixed"]


def report_setting() -> dict:
    """The report's hand-tuned answer to Q2(ii) as Optuna params ({"optimizer": "rmsprop",
    "optimizer.lr": 0.4, ...}): the optimizer keys of its table sweep's `fixed`."""
    return {k: v for k, v in _report_fixed().items()
            if k == "optimizer" or k.startswith("optimizer.")}


# ------------------------------------------------------------------------------ the budget
@dataclass(frozen=True)
class Budget:
    """How much each step runs. FULL is the committed study, QUICK is for CI. None: the study
    file's value, so the study file alone says how large the search is (`resolved`)."""
    n_trials: Optional[int] = None
    n_jobs: Optional[int] = None  # trials per launcher batch (more with the batched launcher)
    trial_seeds: Optional[tuple[int, ...]] = None  # every trial trains one run per seed
    validation_seeds: tuple[int, ...] = tuple(range(1000, 1050))  # never used in the search
    # the sampler comparison: every sampler, `compare_trials` trials, once per study seed, on the
    # whole space (`samplers`) and on the RMSprop branch alone (`branch_samplers`: a continuous
    # space, where GP and CMA-ES do what they are made for), in batches of `compare_n_jobs`
    compare_trials: int = 60
    compare_study_seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    samplers: tuple[str, ...] = ("tpe", "random")
    branch_samplers: tuple[str, ...] = ("tpe", "random", "gp", "cmaes")
    compare_n_jobs: int = 8  # small: a model-based sampler learns from each batch before the next
    epochs: Optional[int] = None  # None: the study file's train.epochs
    name_suffix: str = ""  # quick studies never resume (or spoil) the full one

    def resolved(self) -> "Budget":
        """The study file's values in place of None. epochs stays None (study.yaml records it
        so: the study file's train.epochs)."""
        f = study_file()
        return replace(self, n_trials=_given(self.n_trials, f.n_trials),
                       n_jobs=_given(self.n_jobs, f.n_jobs),
                       trial_seeds=_given(self.trial_seeds, f.seeds))

    def scaled_for_batched(self) -> "Budget":
        # the batched launcher trains a whole batch as one stacked computation: larger batches
        # are nearly free, and TPE's constant_liar keeps the asks of one batch apart
        b = self.resolved()
        return replace(b, n_jobs=max(b.n_jobs, 16))

    def train_epochs(self) -> int:
        return self.epochs or study_file().epochs


def _given(value, study_files):
    return study_files if value is None else value


FULL = Budget()
QUICK = Budget(n_trials=3, n_jobs=3, trial_seeds=(0, 1), validation_seeds=(1000, 1001, 1002),
               compare_trials=2, compare_study_seeds=(0,), compare_n_jobs=2, epochs=20,
               name_suffix="-quick")


def fixed_overrides(budget: Budget, model: Optional[str] = None) -> list[str]:
    """The setting every run of the study shares, read from the study file; `model` in place of
    its model (the cells study)."""
    f = study_file()
    return [f"word={hydra_value(f.word)}", f"model={model or f.model}",
            f"model.hidden_size={f.hidden_size}", f"train.epochs={budget.train_epochs()}"]
