"""From the jobs of one trial (one per seed) to the trial's outcome: state, values, reason.

A job returns a dict of metrics (final_loss, min_loss, epochs_to_converge, converged, status) that
`objective` reads, or, as with hydra-optuna-sweeper, the objective itself: a number, a list of
numbers for multi-objective, or (no `objective` set) a dict of one number per direction, in the
directions' order. Outcome rules:
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
    error: BaseException | None = None  # FAIL by a job's exception: the first one
    seed_values: list[list[float | None]] = field(default_factory=list)  # per job, per objective


class Objective:
    """objectives: metric keys or Python expressions over the metric keys, one per direction."""

    def __init__(self, objectives: str | Sequence[str] | None, n_directions: int, aggregate: str):
        self.exprs = ([] if objectives is None else [objectives] if isinstance(objectives, str)
                      else [str(o) for o in objectives])
        self.n_directions = n_directions
        # a job that returns its objective (a number, or one per direction: hydra-optuna-
        # sweeper's way) needs no expression; one that returns a dict of metrics does, one per
        # direction (or the dict holds just one number per direction), else its trial fails
        # with this reason
        self.mismatch = (
            None if len(self.exprs) == n_directions
            else "set hydra.sweeper.objective to a key or expression per direction" if not self.exprs
            else f"objective has {len(self.exprs)} entries but direction has {n_directions}")
        # what the values are called (plots, reasons): the expressions, or "value i" for values
        # a job returns itself
        self.names = (self.exprs if self.mismatch is None
                      else [f"value {i}" for i in range(n_directions)])
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
        if isinstance(metrics, Real) and not isinstance(metrics, bool):
            values = [float(metrics)]
        elif isinstance(metrics, Sequence) and not isinstance(metrics, str):
            try:
                values = [float(v) for v in metrics]
            except (TypeError, ValueError):
                raise ObjectiveError(f"the job returned {metrics!r}: not a list of numbers") from None
        elif isinstance(metrics, Mapping):
            if self.mismatch is None:
                return [self._evaluate(expr, code, metrics)
                        for expr, code in zip(self.exprs, self.code)]
            if self.exprs or len(metrics) != self.n_directions or not all(
                    isinstance(v, Real) and not isinstance(v, bool) for v in metrics.values()):
                raise ObjectiveError(f"the job returned a dict with keys {list(metrics)}: "
                                     f"{self.mismatch}")
            values = [float(v) for v in metrics.values()]
        else:
            raise ObjectiveError(f"the job returned {type(metrics).__name__} {metrics!r}: not a "
                                 "number, a list of numbers or a dict of metrics")
        if len(values) != self.n_directions:
            raise ObjectiveError(f"the job returned {len(values)} values for "
                                 f"{self.n_directions} directions")
        return values

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
        error: BaseException | None = None
        pruned = False
        per_job: list[list[float | None]] = []
        for seed, ret in zip(seeds, job_returns):
            where = "job" if seed is None else f"seed {seed}"
            if ret.status == JobStatus.FAILED:
                err = ret._return_value  # JobReturn.return_value re-raises; we want the record
                failures.append(f"{where}: {type(err).__name__}: {err}")
                error = error or err
                continue
            metrics = ret.return_value
            status = metrics.get("status") if isinstance(metrics, Mapping) else None
            if status == "pruned":
                pruned = True
                continue
            if status == "diverged":
                failures.append(f"{where}: diverged")
                continue
            try:
                values = self.values_of(metrics)
            except ObjectiveError as err:  # this trial fails; the sweep goes on
                failures.append(f"{where}: {err}")
                continue
            per_job.append(values)
            bad = [(name, v) for name, v in zip(self.names, values) if not _finite(v)]
            if bad:
                failures.append(f"{where}: objective {bad[0][0]} is {bad[0][1]}")
        if failures:
            return Outcome(TrialState.FAIL, reason="; ".join(failures), seed_values=per_job,
                           error=error)
        if pruned:
            return Outcome(TrialState.PRUNED, seed_values=per_job)
        values = [self.aggregate([job[i] for job in per_job]) for i in range(self.n_directions)]
        return Outcome(TrialState.COMPLETE, values=values, seed_values=per_job)


def _finite(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
