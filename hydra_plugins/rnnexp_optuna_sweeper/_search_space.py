"""The search space: Hydra override grammar -> Optuna distributions, fixed overrides, conditions.

Grammar of a parameter (the value of `params.<key>` or a command-line override):

    interval(a, b)                 float in [a, b]
    int(interval(a, b))            int in [a, b]
    tag(log, interval(a, b))       log-uniform (int(...) inside for integers)
    range(a, b[, step])            a, a+step, ... up to b inclusive, as the official plugin's
                                   range (int or float; tag(log, ...) for ints with step 1); the
                                   grid sampler takes Hydra's own values, which stop before b
    shuffle(range(...))            categorical over the range's values (Hydra's, before b)
    choice(x, y, ...) or x,y,...   categorical (a list or dict choice by its Hydra text, [1,2])
    anything else                  a fixed value given to every job

Conditional parameters exist only when another parameter has one value:

    conditional:
      optimizer:                   # the parent: a categorical or fixed parameter
        sgd:     {optimizer.momentum: interval(0, 0.99)}
        rmsprop: {optimizer.momentum: interval(0, 0.99), optimizer.alpha: interval(0.5, 0.999)}

A parent is a top-level categorical (or fixed) parameter; its children are suggested after it.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import (
    ChoiceSweep,
    IntervalSweep,
    Override,
    RangeSweep,
)
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from rnnexp.sweeps.grammar import flatten, hydra_value, quoted


class SearchSpaceError(ValueError):
    """A search space parameter that cannot be understood or is not allowed."""


@dataclass
class Param:
    key: str  # the override key as written, e.g. "optimizer.lr" or "+model.bias"
    distribution: BaseDistribution
    grid: list[Any] | None = None  # a range's values for the grid sampler, where they differ
    # choices that stand for a list or dict: Hydra's text of it ("[1,2]"), passed on unquoted
    raw: frozenset = frozenset()

    @property
    def name(self) -> str:
        """The Optuna parameter name: the config key without Hydra's +/++ prefix."""
        return self.key.lstrip("+")


@dataclass
class SearchSpace:
    params: list[Param] = field(default_factory=list)  # suggested in this order
    # override key -> value as Hydra text; None for a line that has no value (`~key`)
    fixed: dict[str, str | None] = field(default_factory=dict)
    # parent param name -> str(parent value) -> child params (a SearchSpace of their own)
    conditional: dict[str, dict[str, "SearchSpace"]] = field(default_factory=dict)

    def varied_names(self) -> list[str]:
        names = [p.name for p in self.params]
        for branches in self.conditional.values():
            for branch in branches.values():
                names += branch.varied_names()
        return names

    def all_keys(self) -> list[str]:
        keys = [p.key for p in self.params] + list(self.fixed)
        for branches in self.conditional.values():
            for branch in branches.values():
                keys += branch.all_keys()
        return keys

    def suggest(self, trial) -> list[str]:
        """Suggest every parameter that exists for this trial: the job's override lines."""
        lines: list[str] = []
        self._suggest_into(trial, lines, {k.lstrip("+"): v for k, v in self.fixed.items()})
        return lines

    def _suggest_into(self, trial, lines: list[str], known: dict[str, Any]) -> None:
        for p in self.params:
            known[p.name] = value = suggest_one(trial, p)
            lines.append(f"{p.key}={value if value in p.raw else hydra_value(value)}")
        lines += [key if text is None else f"{key}={text}" for key, text in self.fixed.items()]
        for parent, branches in self.conditional.items():
            branch = branches.get(str(known[parent]))
            if branch is not None:
                branch._suggest_into(trial, lines, known)

    def grid(self) -> dict[str, list[Any]]:
        """The space as GridSampler wants it; only finite, unconditional spaces qualify."""
        if self.conditional:
            raise SearchSpaceError("sampler=grid cannot search a conditional space")
        grid: dict[str, list[Any]] = {}
        for p in self.params:
            grid[p.name] = grid_values(p)
        return grid


def suggest_one(trial, p: Param) -> Any:
    d = p.distribution
    if isinstance(d, CategoricalDistribution):
        return trial.suggest_categorical(p.name, d.choices)
    if isinstance(d, IntDistribution):
        return trial.suggest_int(p.name, d.low, d.high, step=d.step, log=d.log)
    assert isinstance(d, FloatDistribution)
    return trial.suggest_float(p.name, d.low, d.high, step=d.step, log=d.log)


def grid_values(p: Param) -> list[Any]:
    if p.grid is not None:  # a range: Hydra's values, as the official plugin's grid takes them
        return list(p.grid)
    d = p.distribution
    if isinstance(d, CategoricalDistribution):
        return list(d.choices)
    if isinstance(d, IntDistribution):
        return list(range(d.low, d.high + 1, d.step))
    if isinstance(d, FloatDistribution) and d.step is not None:
        n = int(round((d.high - d.low) / d.step))
        return [d.low + i * d.step for i in range(n + 1)]
    raise SearchSpaceError(f"sampler=grid needs a finite parameter, {p.key!r} is continuous")


# ---------------------------------------------------------------------------------------------
# Parsing


def parse_overrides(lines: list[str]) -> list[Override]:
    try:
        return OverridesParser.create().parse_overrides(lines)
    except Exception as err:  # noqa: BLE001 - Hydra's message names the bad text already
        raise SearchSpaceError(" ".join(str(err).split())) from err


def override_text(key: str, value: Any) -> str:
    """A params entry as an override line: grammar strings as written, a list as a categorical."""
    if isinstance(value, (list, tuple)):
        return f"{key}={','.join(hydra_value(v) for v in value)}"
    if isinstance(value, str):
        return f"{key}={value}"
    return f"{key}={hydra_value(value)}"


def space_from_overrides(overrides: list[Override]) -> SearchSpace:
    space = SearchSpace()
    for o in overrides:
        key, equals, text = (part.strip() for part in o.input_line.partition("="))
        if not equals:  # `~key`: a deletion, passed on to every job
            space.fixed[key] = None
        elif o.is_sweep_override():
            value = o.value()
            grid = range_values(value) if isinstance(value, RangeSweep) else None
            raw = (frozenset(_encoded(c) for c in value.list if isinstance(c, (list, dict)))
                   if isinstance(value, ChoiceSweep) else frozenset())
            space.params.append(Param(key, distribution_of(key, o), grid, raw))
        else:
            space.fixed[key] = text  # passed on to the jobs exactly as written
    return space


def distribution_of(key: str, o: Override) -> BaseDistribution:
    value = o.value()
    tags = getattr(value, "tags", set()) or set()
    log = "log" in tags
    if isinstance(value, IntervalSweep):
        low, high = value.start, value.end
        if isinstance(low, int) and isinstance(high, int):
            return _checked(key, IntDistribution, low=low, high=high, log=log)
        return _checked(key, FloatDistribution, low=float(low), high=float(high), log=log)
    if isinstance(value, RangeSweep):
        return range_distribution(key, value, log)
    if isinstance(value, ChoiceSweep):
        if log:
            raise SearchSpaceError(f"{key}: tag(log, ...) applies to interval or range, not choice")
        return categorical(key, value.list)
    raise SearchSpaceError(f"{key}: unsupported sweep {o.input_line!r}")


def range_values(r: RangeSweep) -> list[Any]:
    """The values Hydra's range gives (stopping before its end, like Python's range)."""
    return list(r.range())


def range_distribution(key: str, r: RangeSweep, log: bool) -> BaseDistribution:
    start, stop, step = r.start, r.stop, r.step
    if step == 0 or (stop - start) / step <= 0:
        raise SearchSpaceError(f"{key}: range({start}, {stop}, {step}) is empty")
    if r.shuffle:  # the official plugin's reading: a categorical over the range's values
        if log:
            raise SearchSpaceError(f"{key}: tag(log, ...) applies to interval or range, not shuffle")
        return categorical(key, range_values(r))
    # as the official plugin (and Optuna's step distributions) read it: the end is included
    # when it lies on the grid, the last value is the grid point at or below it otherwise
    n = math.floor((stop - start) / step + 1e-9)
    last = start + n * step
    if math.isclose(last, stop, rel_tol=1e-9, abs_tol=1e-12):
        last = stop  # 0.1 + 6 * 0.1 is 0.7000000000000001: the end as written
    low, high = min(start, last), max(start, last)
    if all(isinstance(v, int) for v in (start, stop, step)):
        if log and abs(step) != 1:
            raise SearchSpaceError(f"{key}: tag(log, range(...)) needs step 1")
        return _checked(key, IntDistribution, low=low, high=high, step=1 if log else abs(step), log=log)
    if log:
        raise SearchSpaceError(f"{key}: tag(log, range(...)) needs integers")
    return _checked(key, FloatDistribution, low=float(low), high=float(high), step=float(abs(step)))


def _encoded(choice: Any) -> Any:
    """A list or dict choice as Hydra's text of it (`[1,2]`), as hydra-optuna-sweeper passes it:
    Optuna's categorical takes numbers, strings, bools and null only."""
    if isinstance(choice, (list, dict)):
        return Override._get_value_element_as_str(choice)
    return choice


def categorical(key: str, choices: list[Any]) -> CategoricalDistribution:
    choices = [_encoded(c) for c in choices]
    for c in choices:
        if not (c is None or isinstance(c, (bool, int, float, str))):
            raise SearchSpaceError(f"{key}: choice value {c!r} is not a number, string, bool or null")
    return CategoricalDistribution(choices)


def _checked(key: str, cls, **kwargs) -> BaseDistribution:
    try:
        return cls(**kwargs)
    except ValueError as err:
        raise SearchSpaceError(f"{key}: {err}") from err


def build_search_space(
    params: Mapping[str, Any] | None,
    conditional: Mapping[str, Mapping[str, Mapping[str, Any]]] | None,
    command_line: list[str],
) -> SearchSpace:
    """params from the config, then command-line overrides (which replace params of the same key),
    then the conditional branches."""
    lines = {k: override_text(k, v) for k, v in flatten(params).items()}
    for o in parse_overrides(command_line):
        key = o.input_line.split("=", 1)[0].strip()
        name = key.lstrip("+")
        if name in lines and name != key:  # `+x=...` over the config's `x`: the same parameter
            lines = {(key if k == name else k): v for k, v in lines.items()}
        # a replaced parameter keeps its place: parameters are suggested in this order, which
        # fixes what a seeded sampler draws for each (as in hydra-optuna-sweeper)
        lines[key] = o.input_line
    space = space_from_overrides(parse_overrides(list(lines.values())))
    for parent, branches in (conditional or {}).items():
        space.conditional[parent] = {
            str(choice): build_search_space(children, None, [])
            for choice, children in (branches or {}).items()
        }
    check_conditions(space)
    return space


def check_conditions(space: SearchSpace) -> None:
    """Every parent names a parameter, and every branch names one of the parent's values."""
    parents = {p.name: p.distribution for p in space.params}
    fixed_names = {k.lstrip("+") for k in space.fixed}
    for parent, branches in space.conditional.items():
        if parent in fixed_names:
            continue
        if parent not in parents:
            raise SearchSpaceError(f"conditional parent {parent!r} is not a parameter of the space")
        dist = parents[parent]
        if not isinstance(dist, CategoricalDistribution):
            raise SearchSpaceError(f"conditional parent {parent!r} must be a choice")
        known = {str(c) for c in dist.choices}
        for choice in branches:
            if choice not in known:
                raise SearchSpaceError(
                    f"conditional {parent}={choice!r} is not one of its choices {sorted(known)}"
                )


def check_forbidden(space: SearchSpace, forbid: list[str]) -> None:
    """Refuse a space that varies a key that must stay fixed in this study."""
    forbidden = {k.lstrip("+") for k in forbid}
    for name in space.varied_names():
        if name in forbidden:
            raise SearchSpaceError(f"the search space varies {name!r}, which this study forbids")
