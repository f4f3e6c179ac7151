"""From the jobs of one trial (one per seed) to the trial's outcome: state, values, reason.

A job returns a dict of metrics (final_loss, min_loss, epochs_to_converge, converged, status) or,
as with hydra-optuna-sweeper, a number (a list of numbers for multi-objective). Outcome rules:
    any job raised, diverged, or gave a non-finite or missing objective -> FAIL, reason recorded
    else any job pruned                                                  -> PRUNED
    else                                                                 -> COMPLETE, each
        objective aggregated over the seeds with the configured statistic
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from numbers import Real
from typing import Any, Callable, Mapping, Sequence

from hydra.core.utils import JobReturn, JobStatus
from optuna.trial import TrialState

AGGREGATES: dict[str, Callable[[list[float]], float]] = {
    "mean": statistics.fmean,
    "median": statistics.median,
    "min": min,
    "max": max,
}
_EXPRESSION_GLOBALS = {"__builtins__": {}, "min": min, "max": max, "abs": abs, "float": float,
                       "int": int, "math": math, "inf": math.inf}


class ObjectiveError(ValueError):
    """An objective or aggregate that cannot be evaluated on the jobs' metrics."""


@dataclass
class Outcome:
    state: TrialState
    values: list[float] | None = None  # COMPLETE only
    reason: str | None = None  # FAIL only
    seed_values: list[list[float | None]] = field(default_factory=list)  # per job, per objective


class Objective:
    """objectives: metric keys or Python expressions over the metric keys, one per direction."""

    def __init__(self, objectives: str | Sequence[str], n_directions: int, aggregate: str):
        self.exprs = [objectives] if isinstance(objectives, str) else [str(o) for o in objectives]
        if len(self.exprs) != n_directions:
            raise ObjectiveError(
                f"objective has {len(self.exprs)} entries but direction has {n_directions}"
            )
        self.code = [self._compile(e) for e in self.exprs]
        if aggregate not in AGGREGATES:
            raise ObjectiveError(f"aggregate {aggregate!r} is not one of {sorted(AGGREGATES)}")
        self.aggregate = AGGREGATES[aggregate]

    @staticmethod
    def _compile(expr: str):
        try:
            return compile(expr, "<objective>", "eval")
        except SyntaxError as err:
            raise ObjectiveError(f"objective {expr!r} is not a metric key or expression") from err

    def values_of(self, metrics: Any) -> list[Any]:
        """The objective values of one job's return value (None where the metric is None)."""
        if isinstance(metrics, Real):
            return [float(metrics)]
        if isinstance(metrics, Sequence) and not isinstance(metrics, str):
            return [float(v) for v in metrics]
        if not isinstance(metrics, Mapping):
            raise ObjectiveError(f"the job returned {type(metrics).__name__}, not a dict of metrics")
        return [self._evaluate(expr, code, metrics) for expr, code in zip(self.exprs, self.code)]

    @staticmethod
    def _evaluate(expr: str, code, metrics: Mapping[str, Any]) -> Any:
        if expr in metrics:
            return metrics[expr]
        try:
            return eval(code, _EXPRESSION_GLOBALS, dict(metrics))  # noqa: S307 - user's own config
        except NameError as err:
            raise ObjectiveError(
                f"objective {expr!r}: {err}; the job returned keys {sorted(metrics)}"
            ) from err

    def outcome(self, job_returns: Sequence[JobReturn], seeds: Sequence[int | None]) -> Outcome:
        failures: list[str] = []
        pruned = False
        per_job: list[list[float | None]] = []
        for seed, ret in zip(seeds, job_returns):
            where = "job" if seed is None else f"seed {seed}"
            if ret.status == JobStatus.FAILED:
                err = ret._return_value  # JobReturn.return_value re-raises; we want the record
                failures.append(f"{where}: {type(err).__name__}: {err}")
                continue
            metrics = ret.return_value
            status = metrics.get("status") if isinstance(metrics, Mapping) else None
            if status == "pruned":
                pruned = True
                continue
            if status == "diverged":
                failures.append(f"{where}: diverged")
                continue
            values = self.values_of(metrics)
            per_job.append(values)
            bad = [e for e, v in zip(self.exprs, values) if not _finite(v)]
            if bad:
                failures.append(f"{where}: objective {bad[0]} is {values[self.exprs.index(bad[0])]}")
        if failures:
            return Outcome(TrialState.FAIL, reason="; ".join(failures), seed_values=per_job)
        if pruned:
            return Outcome(TrialState.PRUNED, seed_values=per_job)
        values = [self.aggregate([job[i] for job in per_job]) for i in range(len(self.exprs))]
        return Outcome(TrialState.COMPLETE, values=values, seed_values=per_job)


def _finite(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
