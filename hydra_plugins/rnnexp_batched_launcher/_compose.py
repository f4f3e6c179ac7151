"""Each job's config from the overrides a sweeper hands the launcher, without a Hydra compose per
job (about 60 ms each, which is more than training a member of a batch).

Hydra composes a job in two steps: config-group overrides (`optimizer=adam`, `model=numpy_rnn`)
choose the defaults list, then value overrides (`optimizer.lr=0.1`, `+x=1`, `~y`, `z=null`) are
applied to the composed config, in order. The first step is done here once per distinct set of
group overrides (a *base*, composed by Hydra itself); the second per job, with Hydra's own override
application on a copy of the base's run config, so the structured schema still checks every type.
The job's hydra node is the base's as a plain container with the per-job fields filled in the way
Hydra fills them: job.num, job.id, job.override_dirname, runtime.output_dir, overrides.task and
overrides.hydra.

Jobs this cannot reproduce exactly (hydra.* overrides other than adding `hydra.job.env_set`
variables, a sweep dir or subdir with interpolations other than the usual ones) are composed by
Hydra in full, so every job's files are what the basic launcher writes.
"""
from __future__ import annotations

import copy
import os
import pickle
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from hydra._internal.config_loader_impl import ConfigLoaderImpl, get_overrides_dirname
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from . import _yaml

ENV_SET = "hydra.job.env_set."
PER_JOB_HYDRA_KEYS = ("overrides", "job", "runtime")  # hydra.<key> subtrees that differ per job
_JOB_FIELD = re.compile(r"\$\{hydra\.job\.(num|id|override_dirname)\}")
_NOW = re.compile(r"\$\{now:[^${}\\]*\}")


@dataclass
class Base:
    """What every job with the same config-group overrides starts from."""

    full: DictConfig  # composed by Hydra: run config and hydra node
    task: bytes  # the run config (no hydra node, struct mode as Hydra leaves it), pickled:
    # unpickling makes a typed copy five times faster than copy.deepcopy
    hydra: dict  # the hydra node as a plain container, interpolations unresolved
    entries: dict  # hydra.yaml text of each hydra.<key> entry that is the same for every job
    sweep_dir: Optional[str]  # hydra.sweep.dir resolved, or None when it depends on the job
    subdir: Optional[str]  # hydra.sweep.subdir, unresolved, if it only refers to job.num/id/override_dirname
    dirname: tuple  # hydra.job.config.override_dirname: (kv_sep, item_sep, exclude_keys)
    env_set: dict  # hydra.job.env_set, resolved
    children: dict = field(default_factory=dict)  # (key, child) -> text of hydra.<key>.<child>

    def child_entry(self, key: str, child: str) -> str:
        text = self.children.get((key, child))
        if text is None:
            text = self.children[key, child] = _yaml.mapping_entry(child, self.hydra[key][child], 4)
        return text


@dataclass
class Job:
    """One job of a sweep: its run config, its hydra node, where it writes."""

    overrides: list[str]  # as the sweeper handed them
    task_overrides: list[str]  # hydra.overrides.task
    cfg: DictConfig  # what the task function would be called with
    hydra: dict  # the job's hydra node as a plain container
    output_dir: Path  # hydra.runtime.output_dir
    base: Optional[Base] = None  # None: composed by Hydra in full (hydra_yaml is then set)
    hydra_yaml: Optional[str] = None
    env_set: dict = field(default_factory=dict)  # hydra.job.env_set, resolved
    container: Optional[dict] = None  # cfg as a plain container, once the launcher is done with it

    def config_container(self) -> dict:
        if self.container is None:
            self.container = OmegaConf.to_container(self.cfg, enum_to_str=True)
        return self.container

    def hydra_text(self) -> str:
        """.hydra/hydra.yaml: the base's text for every entry this job shares with it."""
        if self.hydra_yaml is None:
            base, parts = self.base, ["hydra:\n"]
            for key, value in self.hydra.items():
                if key not in PER_JOB_HYDRA_KEYS:
                    shared = value is base.hydra[key]
                    parts.append(base.entries[key] if shared else _yaml.mapping_entry(key, value, 2))
                    continue
                parts.append(f"  {key}:\n")  # overrides, job, runtime: never empty
                shared = base.hydra[key]
                for child, v in value.items():
                    parts.append(base.child_entry(key, child) if shared.get(child) is v
                                 else _yaml.mapping_entry(child, v, 4))
            self.hydra_yaml = "".join(parts)
        return self.hydra_yaml

    def config_text(self) -> str:
        """.hydra/config.yaml"""
        return _yaml.to_yaml_exact(self.config_container())

    def overrides_text(self) -> str:
        """.hydra/overrides.yaml"""
        return _yaml.to_yaml_exact(list(self.task_overrides))


@dataclass
class _Split:
    """A job's overrides sorted by what they act on."""

    parsed: list[Override]
    groups: tuple[str, ...]  # config-group overrides: they choose the base
    values: list[Override]  # value overrides of the run config
    env: list[tuple[str, Any]]  # (name, value) of `+` / `++hydra.job.env_set.NAME=value`
    needs_hydra: bool  # something only a full Hydra compose reproduces
    subdir: Optional[str] = None  # `hydra.sweep.subdir=...` of this job (the Optuna sweeper's)


class JobComposer:
    """Composes jobs against one master config (the multirun's), caching bases and parses."""

    def __init__(self, config_loader, master: DictConfig):
        self.loader = config_loader
        self.master = master
        self.parser = OverridesParser.create()
        self._parsed: dict[str, Override] = {}
        self._is_group: dict[str, bool] = {}
        self._bases: dict[tuple[str, ...], Base] = {}
        self.master_hydra_overrides = OmegaConf.to_container(master.hydra.overrides.hydra)  # unresolved
        self._pending: dict[tuple[str, ...], list[_Prepared]] = {}  # checked, not yet launched
        self.seconds = 0.0  # spent composing jobs (bases included), for the launcher's timing line

    # ------------------------------------------------------------------ overrides
    def _parse(self, line: str) -> Override:
        o = self._parsed.get(line)
        if o is None:
            o = self._parsed[line] = self.parser.parse_overrides([line])[0]
        return o

    def _group_exists(self, key: str) -> bool:
        known = self._is_group.get(key)
        if known is None:
            known = self._is_group[key] = self.loader.repository.group_exists(key)
        return known

    def _split(self, overrides: Sequence[str]) -> _Split:
        parsed = [self._parse(line) for line in overrides]
        groups, values, env, needs_hydra, subdir = [], [], [], False, None
        for o in parsed:
            if o.is_sweep_override():
                needs_hydra = True  # Hydra refuses it with its own message
            elif self._group_exists(o.key_or_group) and not isinstance(o.value(), dict):
                groups.append(o.input_line)  # the same test Hydra's defaults list makes
            elif not o.is_hydra_override():
                values.append(o)
            elif _is_env_set_addition(o):
                env.append((o.key_or_group[len(ENV_SET):], o.value()))
            elif (o.key_or_group == "hydra.sweep.subdir" and not o.is_delete()
                  and _subdir({"sweep": {"subdir": _as_str(o.value())}}) is not None):
                subdir = _as_str(o.value())
            else:
                needs_hydra = True
        return _Split(parsed, tuple(groups), values, env, needs_hydra, subdir)

    # ------------------------------------------------------------------ bases
    def base(self, groups: tuple[str, ...]) -> Base:
        b = self._bases.get(groups)
        if b is None:
            b = self._bases[groups] = self._make_base(groups)
        return b

    def _make_base(self, groups: tuple[str, ...]) -> Base:
        full = self.loader.load_sweep_config(self.master, list(groups))
        task = copy.deepcopy(full)
        with read_write(task), open_dict(task):
            del task["hydra"]
        hydra = OmegaConf.to_container(full.hydra, enum_to_str=True)
        entries = {k: _yaml.mapping_entry(k, v, 2) for k, v in hydra.items()
                   if k not in PER_JOB_HYDRA_KEYS}
        settings = full.hydra.job.config.override_dirname
        dirname = (settings.kv_sep, settings.item_sep, list(settings.exclude_keys))
        env_set = OmegaConf.to_container(full.hydra.job.env_set, resolve=True)
        return Base(full, pickle.dumps(task, protocol=pickle.HIGHEST_PROTOCOL), hydra, entries, _resolved_sweep_dir(full, hydra), _subdir(hydra),
                    dirname, env_set)

    # ------------------------------------------------------------------ jobs
    def job(self, overrides: Sequence[str], idx: int) -> Job:
        """The job numbered `idx` with these overrides."""
        pending = self._pending.get(tuple(overrides))
        prepared = pending.pop(0) if pending else self.prepare(overrides)
        start = time.perf_counter()
        try:
            return self.finish(prepared, idx)
        finally:
            self.seconds += time.perf_counter() - start

    def prepare(self, overrides: Sequence[str], keep: bool = False) -> "_Prepared":
        """Everything of a job that does not depend on its number; raises what composing the job
        with Hydra would raise. keep: hold it for the job() call that launches it."""
        start = time.perf_counter()
        try:
            prepared = self._prepare(overrides)
        finally:
            self.seconds += time.perf_counter() - start
        if keep:
            self._pending.setdefault(tuple(overrides), []).append(prepared)
        return prepared

    def forget_pending(self) -> None:
        self._pending.clear()

    def _prepare(self, overrides: Sequence[str]) -> "_Prepared":
        split = self._split(overrides)
        if split.needs_hydra:
            return _Prepared(list(overrides), split, None, None)
        base = self.base(split.groups)
        if base.sweep_dir is None or (split.subdir or base.subdir) is None or any(
                name in base.hydra["job"]["env_copy"] or
                (o_add and name in base.hydra["job"]["env_set"])
                for (name, _), o_add in zip(split.env, _env_is_add(split))):
            return _Prepared(list(overrides), split, None, None)
        cfg = pickle.loads(base.task)
        ConfigLoaderImpl._apply_overrides_to_config(split.values, cfg)
        return _Prepared(list(overrides), split, base, cfg)

    def finish(self, prepared: "_Prepared", idx: int) -> Job:
        """The job numbered `idx`: its hydra node, output dir and files' contents."""
        if prepared.base is None:
            return self._compose_in_full(prepared.overrides, idx)
        base, split = prepared.base, prepared.split
        task_lines = [o.input_line for o in split.parsed if not o.is_hydra_override()]
        hydra_lines = [o.input_line for o in split.parsed if o.is_hydra_override()]
        app = [o for o in split.parsed if not o.is_hydra_override()]
        kv_sep, item_sep, exclude = base.dirname
        dirname = get_overrides_dirname(app, exclude, item_sep, kv_sep)
        if "${" in dirname or "\\" in dirname:  # the subdir would resolve what it holds
            return self._compose_in_full(prepared.overrides, idx)
        fields = {"num": str(idx), "id": str(idx), "override_dirname": dirname}
        template = base.subdir if split.subdir is None else split.subdir
        subdir = _JOB_FIELD.sub(lambda m: fields[m.group(1)], template)
        output_dir = os.path.abspath(os.path.join(base.sweep_dir, subdir))

        h = dict(base.hydra)  # copied along the paths that change, the rest is shared
        if split.subdir is not None:
            h["sweep"] = {**h["sweep"], "subdir": split.subdir}
        h["overrides"] = {**h["overrides"], "hydra": self.master_hydra_overrides + hydra_lines,
                          "task": task_lines}
        added = {k: str(v) for k, v in split.env}  # env_set is Dict[str, str]
        env = {**h["job"]["env_set"], **added} if added else h["job"]["env_set"]
        h["job"] = {**h["job"], "override_dirname": dirname, "id": str(idx), "num": idx,
                    "env_set": env}
        h["runtime"] = {**h["runtime"], "output_dir": output_dir}
        return Job(prepared.overrides, task_lines, prepared.cfg, h, Path(output_dir), base,
                   env_set={**base.env_set, **added})

    def _compose_in_full(self, overrides: list[str], idx: int) -> Job:
        """What the basic launcher and run_job do, step by step."""
        config = self.loader.load_sweep_config(self.master, list(overrides))
        with open_dict(config):
            config.hydra.job.id = idx
            config.hydra.job.num = idx
        saved = HydraConfig.instance().cfg
        try:
            HydraConfig.instance().set_config(config)
            output_dir = str(OmegaConf.select(config, "hydra.sweep.dir"))
            output_dir = os.path.join(output_dir, str(OmegaConf.select(config, "hydra.sweep.subdir")))
            with read_write(config.hydra.runtime), open_dict(config.hydra.runtime):
                config.hydra.runtime.output_dir = os.path.abspath(output_dir)
            HydraConfig.instance().set_config(config)
            hydra = OmegaConf.to_container(config.hydra, enum_to_str=True)
            env_set = OmegaConf.to_container(config.hydra.job.env_set, resolve=True)
        finally:
            HydraConfig.instance().cfg = saved
        task = copy.deepcopy(config)
        with read_write(task), open_dict(task):
            del task["hydra"]
        return Job(list(overrides), OmegaConf.to_container(config.hydra.overrides.task), task, hydra,
                   Path(hydra["runtime"]["output_dir"]), None, _yaml.dump({"hydra": hydra}),
                   env_set)


@dataclass
class _Prepared:
    overrides: list[str]
    split: _Split
    base: Optional[Base]  # None: compose in full
    cfg: Optional[DictConfig]


def _is_env_set_addition(o: Override) -> bool:
    """`+hydra.job.env_set.NAME=v` or `++...`, v a string or number: Hydra stores str(v)."""
    name = o.key_or_group[len(ENV_SET):] if o.key_or_group.startswith(ENV_SET) else ""
    return (bool(name) and "." not in name and o.package is None
            and (o.is_add() or o.is_force_add())
            and isinstance(o.value(), (str, int, float, bool)))


def _env_is_add(split: _Split) -> list[bool]:
    """For each env_set addition of `split`: True for `+` (which fails on an existing name)."""
    return [o.is_add() for o in split.parsed if o.is_hydra_override() and _is_env_set_addition(o)]


def _resolved_sweep_dir(full: DictConfig, hydra: dict) -> Optional[str]:
    """hydra.sweep.dir as the basic launcher resolves it, when no job can change it (it holds no
    interpolation but ${now:...}, whose value every job copies from the master config)."""
    raw = hydra["sweep"]["dir"]
    if not isinstance(raw, str) or "${" in _NOW.sub("", raw) or "\\" in raw:
        return None
    return str(OmegaConf.select(full, "hydra.sweep.dir"))


def _as_str(value) -> Any:
    """An override value as Hydra stores it in hydra.sweep.subdir (a str field)."""
    return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


def _subdir(hydra: dict) -> Optional[str]:
    """hydra.sweep.subdir when it refers to nothing but ${hydra.job.num|id|override_dirname}."""
    raw = hydra["sweep"]["subdir"]
    if not isinstance(raw, str) or "${" in _JOB_FIELD.sub("", raw) or "\\" in raw:
        return None
    return raw
