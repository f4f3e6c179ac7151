"""Each job's config from the overrides a sweeper hands the launcher, without a Hydra compose per
job (about 60 ms each, which is more than training a member of a batch).

Hydra composes a job in two steps: config-group overrides (`optimizer=adam`, `model=numpy_rnn`)
choose the defaults list, then value overrides (`optimizer.lr=0.1`, `+x=1`, `~y`, `z=null`) are
applied to the composed config, in order. The first step is done here once per distinct set of
group overrides (a *base*, composed by Hydra itself); the second per job:

- **Leaf path** (what grids and studies hand over: `key=value` for keys the base has). Each
  distinct override line is applied once per base, alone, to a typed copy of the base with Hydra's
  own override application; what it leaves at its key (converted by the schema: `lr=1` -> 1.0) is
  cached, and so is the fact that it changed nothing else. A job whose overrides all passed that
  way, on distinct keys none of which holds another, is the base's plain container with those
  leaves replaced (copied along their paths only, the rest shared with the base): no DictConfig at
  all. Setting one leaf cannot change how another is checked, so this is what applying them in
  order gives.
- **Typed path** (anything else: `+key`, `++key`, `~key`, dict values, an override that fails,
  interpolations): a typed copy of the base (unpickled) with the job's overrides applied by Hydra,
  which also raises Hydra's own errors.

The job's hydra node is the base's as a plain container with the per-job fields filled in the way
Hydra fills them: job.num, job.id, job.override_dirname, runtime.output_dir, overrides.task and
overrides.hydra.

Jobs this cannot reproduce exactly (hydra.* overrides other than adding `hydra.job.env_set`
variables, a sweep dir or subdir with interpolations other than the usual ones) are composed by
Hydra in full, so every job's files are what the basic launcher writes.
"""
from __future__ import annotations

import copy
import functools
import os
import pickle
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from hydra._internal.config_loader_impl import ConfigLoaderImpl, get_overrides_dirname
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, OverrideType, ValueType
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from rnnexp.config import Plain

from . import _yaml

ENV_SET = "hydra.job.env_set."
PER_JOB_HYDRA_KEYS = ("overrides", "job", "runtime")  # hydra.<key> subtrees that differ per job
_JOB_FIELD = re.compile(r"\$\{hydra\.job\.(num|id|override_dirname)\}")
_NOW = re.compile(r"\$\{now:[^${}\\]*\}")
_CACHE_LIMIT = 100_000  # entries of a per-line cache before it is emptied (unique lines pile up)
_NOT_A_LEAF = object()  # cached: this override needs the typed path


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
    container: dict  # the run config as a plain container (unresolved): what leaf-path jobs share
    leaf_ok: bool  # the run config holds no interpolation, so jobs may take the leaf path
    children: dict = field(default_factory=dict)  # (key, child) -> text of hydra.<key>.<child>
    config_texts: dict = field(default_factory=dict)  # path -> config.yaml text of a shared entry
    leaves: dict = field(default_factory=dict)  # override line -> leaf (see _leaf) or _NOT_A_LEAF
    key_parts: dict = field(default_factory=dict)  # top-level key -> its text in a batch key

    def child_entry(self, key: str, child: str) -> str:
        text = self.children.get((key, child))
        if text is None:
            text = self.children[key, child] = _yaml.mapping_entry(child, self.hydra[key][child], 4)
        return text


class Job:
    """One job of a sweep: its run config, its hydra node, where it writes.

    A leaf-path job holds its run config as a plain container (`container`) and trains from a
    Plain copy of it (`run_cfg`); its typed DictConfig (`cfg`) is made only when something asks.
    """

    def __init__(self, overrides: list[str], task_overrides: list[str], hydra: dict,
                 output_dir: str, base: Optional[Base] = None, hydra_yaml: Optional[str] = None,
                 env_set: Optional[dict] = None, *, cfg: Optional[DictConfig] = None,
                 container: Optional[dict] = None,
                 make_cfg: Optional[Callable[[], DictConfig]] = None) -> None:
        self.overrides = overrides  # as the sweeper handed them
        self.task_overrides = task_overrides  # hydra.overrides.task
        self.hydra = hydra  # the job's hydra node as a plain container
        self.dir = output_dir  # hydra.runtime.output_dir
        self.base = base  # None: composed by Hydra in full (hydra_yaml is then set)
        self.hydra_yaml = hydra_yaml
        self.env_set = env_set if env_set is not None else {}  # hydra.job.env_set, resolved
        self._cfg = cfg
        self.container = container  # the run config as a plain container
        self._make_cfg = make_cfg
        self.leaf_path = cfg is None and make_cfg is not None
        self._run_cfg = None

    @property
    def output_dir(self) -> Path:
        return Path(self.dir)

    @property
    def cfg(self) -> DictConfig:
        """The typed config the task function would be called with."""
        if self._cfg is None:
            self._cfg = self._make_cfg()
        return self._cfg

    @property
    def run_cfg(self):
        """What train_group and the hooks get: a Plain tree on the leaf path, else the DictConfig."""
        if self._run_cfg is None:
            self._run_cfg = _plain(self.container) if self.leaf_path else self.cfg
        return self._run_cfg

    def config_container(self) -> dict:
        if self.container is None:
            self.container = OmegaConf.to_container(self.cfg, enum_to_str=True)
        return self.container

    def hydra_text(self) -> str:
        """.hydra/hydra.yaml: the base's text for every entry this job shares with it."""
        if self.hydra_yaml is not None:
            return self.hydra_yaml
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
        return "".join(parts)

    def config_text(self) -> str:
        """.hydra/config.yaml"""
        if self.leaf_path:  # the entries it shares with its base are rendered once per base
            base = self.base
            return _yaml.to_yaml_sharing(self.container, base.container, base.config_texts)
        return _yaml.to_yaml_exact(self.config_container())

    def overrides_text(self) -> str:
        """.hydra/overrides.yaml"""
        return _yaml.to_yaml_exact(list(self.task_overrides))


def _plain(container: dict) -> Plain:
    """A Plain tree of a run config's container, as rnnexp.config.plain makes it of the DictConfig
    (lists copied too: the container shares them with its base)."""
    return Plain({k: _plain(v) if isinstance(v, dict) else copy.deepcopy(v) if isinstance(v, list)
                  else v for k, v in container.items()})


@dataclass
class _Split:
    """A job's overrides sorted by what they act on."""

    parsed: list[Override]
    groups: tuple[str, ...]  # config-group overrides: they choose the base
    values: list[Override]  # value overrides of the run config
    env: list[tuple[str, Any, bool]]  # (name, value, is `+`) of `+` / `++hydra.job.env_set.NAME=value`
    needs_hydra: bool  # something only a full Hydra compose reproduces
    subdir: Optional[str]  # `hydra.sweep.subdir=...` of this job (the Optuna sweeper's)
    task: list[Override]  # the overrides that are not hydra's, in order (hydra.overrides.task)
    hydra_lines: list[str]  # the hydra overrides (hydra.overrides.hydra, after the master's)


# what an override line does, decided once per distinct line (_JobComposer._classify)
_SWEEP, _GROUP, _VALUE, _ENV, _SUBDIR, _HYDRA = range(6)


@dataclass
class _Prepared:
    """A job composed up to its number: its run config, not yet its hydra node."""

    overrides: list[str]
    split: _Split
    base: Optional[Base]  # None: compose in full
    cfg: Optional[DictConfig] = None  # typed path: the composed run config
    container: Optional[dict] = None  # leaf path: the run config as a plain container

    @property
    def run_container(self) -> dict:
        if self.container is None:
            self.container = OmegaConf.to_container(self.cfg, enum_to_str=True)
        return self.container


class JobComposer:
    """Composes jobs against one master config (the multirun's), caching bases and parses.

    defaults: {"device": ..., "dtype": ...}, set on every job whose own overrides do not name
    the key (the launcher's options of those names)."""

    def __init__(self, config_loader, master: DictConfig, defaults: Optional[dict] = None):
        self.loader = config_loader
        self.master = master
        self.defaults = {k: v for k, v in (defaults or {}).items() if v is not None}
        self.parser = OverridesParser.create()
        self._classified: dict[str, tuple] = {}
        self._is_group: dict[str, bool] = {}
        self._bases: dict[tuple[str, ...], Base] = {}
        self.master_hydra_overrides = OmegaConf.to_container(master.hydra.overrides.hydra)  # unresolved
        self.seconds = 0.0  # spent composing jobs (bases included), for the launcher's timing line

    # ------------------------------------------------------------------ overrides
    def _group_exists(self, key: str) -> bool:
        known = self._is_group.get(key)
        if known is None:
            known = self._is_group[key] = self.loader.repository.group_exists(key)
        return known

    def _classify(self, line: str) -> tuple:
        """(override, kind, payload, is a hydra override) of one override line, cached."""
        c = self._classified.get(line)
        if c is None:
            if len(self._classified) > _CACHE_LIMIT:
                self._classified.clear()
            o = _simple_override(line) or self.parser.parse_overrides([line])[0]
            kind, payload = _HYDRA, None
            if o.is_sweep_override():
                kind = _SWEEP  # Hydra refuses it with its own message
            elif self._group_exists(o.key_or_group) and not isinstance(o.value(), dict):
                kind = _GROUP  # the same test Hydra's defaults list makes
            elif not o.is_hydra_override():
                kind = _VALUE
            elif _is_env_set_addition(o):
                kind, payload = _ENV, (o.key_or_group[len(ENV_SET):], o.value(), o.is_add())
            elif (o.key_or_group == "hydra.sweep.subdir" and not o.is_delete()
                  and _subdir({"sweep": {"subdir": _as_str(o.value())}}) is not None):
                kind, payload = _SUBDIR, _as_str(o.value())
            c = self._classified[line] = (o, kind, payload, o.is_hydra_override())
        return c

    def _split(self, overrides: Sequence[str]) -> _Split:
        parsed, groups, values, env, task, hydra_lines = [], [], [], [], [], []
        needs_hydra, subdir = False, None
        for line in overrides:
            o, kind, payload, is_hydra = self._classify(line)
            parsed.append(o)
            if is_hydra:
                hydra_lines.append(o.input_line)
            else:
                task.append(o)
            if kind == _VALUE:
                values.append(o)
            elif kind == _GROUP:
                groups.append(o.input_line)
            elif kind == _ENV:
                env.append(payload)
            elif kind == _SUBDIR:
                subdir = payload
            else:
                needs_hydra = True
        return _Split(parsed, tuple(groups), values, env, needs_hydra, subdir, task, hydra_lines)

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
        container = OmegaConf.to_container(task, enum_to_str=True)
        return Base(full, pickle.dumps(task, protocol=pickle.HIGHEST_PROTOCOL), hydra, entries,
                    _resolved_sweep_dir(full, hydra), _subdir(hydra), dirname, env_set, container,
                    "${" not in repr(container))

    # ------------------------------------------------------------------ leaves
    def _leaf(self, base: Base, o: Override):
        """(path, value, the paths above it): the value `o` alone leaves at its key in the base's
        run config, if it applies without error and changes nothing else; _NOT_A_LEAF otherwise
        (the typed path then decides, and raises Hydra's error if there is one)."""
        if (o.type is not OverrideType.CHANGE or o.package is not None
                or o.is_sweep_override() or isinstance(o.value(), dict)):
            return _NOT_A_LEAF
        path = tuple(o.key_or_group.split("."))
        value = o.value()
        probe_key = ("\0probe", path, type(value))
        probe = base.leaves.get(probe_key)
        if probe is not None and probe is not _NOT_A_LEAF:
            try:  # a key that took a value of this type as a leaf takes this one alike
                converted = probe.validate_and_convert(value)
            except Exception:  # noqa: BLE001 - the full check decides
                converted = _NOT_A_LEAF
            if converted is not _NOT_A_LEAF and type(converted) in _PROBED_TYPES:
                return path, converted, tuple(path[:k] for k in range(1, len(path)))
        leaf = self._leaf_result(base, path, functools.partial(
            ConfigLoaderImpl._apply_overrides_to_config, [o]))
        if probe is None and type(value) in _PROBED_TYPES:
            self._remember(base, probe_key, _value_node(base, path) if leaf is not _NOT_A_LEAF
                           and type(leaf[1]) in _PROBED_TYPES else _NOT_A_LEAF)
        return leaf

    def _default_leaf(self, base: Base, key: str, value: Any):
        """The leaf of a launcher default, as `cfg[key] = value` leaves it."""
        return self._leaf_result(base, (key,), lambda cfg: cfg.__setitem__(key, value))

    @staticmethod
    def _leaf_result(base: Base, path: tuple, apply: Callable[[DictConfig], None]):
        parent = base.container
        for k in path[:-1]:
            parent = _child(parent, k)
        if _child(parent, path[-1], _NOT_A_LEAF) is _NOT_A_LEAF:
            return _NOT_A_LEAF
        cfg = pickle.loads(base.task)
        try:
            apply(cfg)
        except Exception:  # noqa: BLE001 - the typed path raises it, as Hydra does
            return _NOT_A_LEAF
        after = OmegaConf.to_container(cfg, enum_to_str=True)
        value = after
        for k in path:
            value = _child(value, k)
        if repr(_with(base.container, path, value)) != repr(after) or "${" in repr(value):
            return _NOT_A_LEAF  # it changed more than its own key, or holds an interpolation
        return path, value, tuple(path[:k] for k in range(1, len(path)))  # and the keys above it

    @staticmethod
    def _remember(base: Base, key: Any, leaf: Any) -> Any:
        if len(base.leaves) > _CACHE_LIMIT:
            base.leaves.clear()
        base.leaves[key] = leaf
        return leaf

    def _leaf_changes(self, base: Base, split: _Split) -> Optional[list]:
        """The job's [(path, value, keys above), ...] on the leaf path, launcher defaults last;
        None where the job takes the typed path."""
        if not base.leaf_ok:
            return None
        changes, leaves = [], base.leaves
        for o in split.values:
            leaf = leaves.get(o.input_line)
            if leaf is None:
                leaf = self._remember(base, o.input_line, self._leaf(base, o))
            if leaf is _NOT_A_LEAF:
                return None
            changes.append(leaf)
        for key, value in self._defaults_for(split):
            leaf = leaves.get(("\0default", key, value))
            if leaf is None:
                leaf = self._remember(base, ("\0default", key, value),
                                      self._default_leaf(base, key, value))
            if leaf is _NOT_A_LEAF:
                return None
            changes.append(leaf)
        paths = {leaf[0] for leaf in changes}
        if len(paths) != len(changes) or any(p in paths for leaf in changes for p in leaf[2]):
            return None  # the same key twice, or a key and one inside it: order matters
        return changes

    def _defaults_for(self, split: _Split) -> list[tuple[str, Any]]:
        """The launcher defaults this job's own overrides do not set."""
        if not self.defaults:
            return []
        named = {o.input_line.lstrip("+~").split("=", 1)[0] for o in split.task}
        return [(k, v) for k, v in self.defaults.items() if k not in named]

    def _typed_cfg(self, base: Base, split: _Split) -> DictConfig:
        """The run config as Hydra composes it: the base, the job's value overrides applied in
        order (raising Hydra's errors), then the launcher defaults."""
        cfg = pickle.loads(base.task)
        ConfigLoaderImpl._apply_overrides_to_config(split.values, cfg)
        for key, value in self._defaults_for(split):
            cfg[key] = value
        return cfg

    # ------------------------------------------------------------------ jobs
    def job(self, overrides: Sequence[str], idx: int) -> Job:
        """The job numbered `idx` with these overrides."""
        prepared = self.prepare(overrides)
        start = time.perf_counter()
        try:
            return self.finish(prepared, idx)
        finally:
            self.seconds += time.perf_counter() - start

    def prepare(self, overrides: Sequence[str]) -> _Prepared:
        """Everything of a job that does not depend on its number; raises what composing the job
        with Hydra would raise."""
        start = time.perf_counter()
        try:
            return self._prepare(overrides)
        finally:
            self.seconds += time.perf_counter() - start

    def _prepare(self, overrides: Sequence[str]) -> _Prepared:
        split = self._split(overrides)
        if split.needs_hydra:
            return _Prepared(list(overrides), split, None)
        base = self.base(split.groups)
        if base.sweep_dir is None or (split.subdir or base.subdir) is None or any(
                name in base.hydra["job"]["env_copy"] or
                (o_add and name in base.hydra["job"]["env_set"])
                for name, _, o_add in split.env):
            return _Prepared(list(overrides), split, None)
        changes = self._leaf_changes(base, split)
        if changes is not None:
            return _Prepared(list(overrides), split, base, container=_replaced(base.container, changes))
        return _Prepared(list(overrides), split, base, cfg=self._typed_cfg(base, split))

    def finish(self, prepared: _Prepared, idx: int) -> Job:
        """The job numbered `idx`: its hydra node, output dir and files' contents."""
        if prepared.base is None:
            return self._compose_in_full(prepared.overrides, idx)
        base, split = prepared.base, prepared.split
        task_lines = [o.input_line for o in split.task]
        kv_sep, item_sep, exclude = base.dirname
        dirname = get_overrides_dirname(split.task, exclude, item_sep, kv_sep)
        if "${" in dirname or "\\" in dirname:  # the subdir would resolve what it holds
            return self._compose_in_full(prepared.overrides, idx)
        fields = {"num": str(idx), "id": str(idx), "override_dirname": dirname}
        template = base.subdir if split.subdir is None else split.subdir
        subdir = _JOB_FIELD.sub(lambda m: fields[m.group(1)], template)
        output_dir = os.path.abspath(os.path.join(base.sweep_dir, subdir))

        h = dict(base.hydra)  # copied along the paths that change, the rest is shared
        if split.subdir is not None:
            h["sweep"] = {**h["sweep"], "subdir": split.subdir}
        h["overrides"] = {**h["overrides"], "hydra": self.master_hydra_overrides + split.hydra_lines,
                          "task": task_lines}
        added = {k: str(v) for k, v, _ in split.env}  # env_set is Dict[str, str]
        env = {**h["job"]["env_set"], **added} if added else h["job"]["env_set"]
        h["job"] = {**h["job"], "override_dirname": dirname, "id": str(idx), "num": idx,
                    "env_set": env}
        h["runtime"] = {**h["runtime"], "output_dir": output_dir}
        env_set = {**base.env_set, **added}
        if prepared.cfg is not None:
            return Job(prepared.overrides, task_lines, h, output_dir, base, env_set=env_set,
                       cfg=prepared.cfg, container=prepared.container)
        return Job(prepared.overrides, task_lines, h, output_dir, base, env_set=env_set,
                   container=prepared.container,
                   make_cfg=functools.partial(self._typed_cfg, base, split))

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
        if self.defaults:
            for key, value in self._defaults_for(self._split(overrides)):
                task[key] = value
        return Job(list(overrides), OmegaConf.to_container(config.hydra.overrides.task), hydra,
                   hydra["runtime"]["output_dir"], None, _yaml.dump({"hydra": hydra}), env_set,
                   cfg=task)


def _replaced(container: dict, changes: list) -> dict:
    """`container` with the leaf at each (path, value, ...) of `changes` set, copied along those
    paths only."""
    out = container
    for leaf in changes:
        out = _with(out, leaf[0], leaf[1])
    return out


def _with(d, path: tuple, value: Any):
    """A copy of the dict or list `d` with the leaf at `path` set, copied along `path` only."""
    key = path[0]
    if isinstance(d, list):
        out, i = list(d), int(key)
        out[i] = value if len(path) == 1 else _with(d[i], path[1:], value)
        return out
    if len(path) == 1:
        return {**d, key: value}
    return {**d, key: _with(d[key], path[1:], value)}


def _child(container, key: str, missing: Any = None):
    """container[key] for a dict, container[int(key)] for a list (Hydra's `betas.0`), else
    `missing`."""
    if isinstance(container, dict):
        return container.get(key, missing)
    if isinstance(container, list) and _INDEX.fullmatch(key) and int(key) < len(container):
        return container[int(key)]
    return missing


# ------------------------------------------------------------------ simple override lines
# `key=value` with a dotted key and a number or bool, which is what sweepers hand over by the
# thousand (every trial a new learning rate): parsed without Hydra's grammar (0.4 ms a line). The
# patterns are Hydra's own for those tokens (OverrideLexer.g4: DOT_PATH/ID keys, INT, FLOAT, BOOL),
# without the underscores, inf and nan that Hydra also takes; any other line goes to its parser.
_INDEX = re.compile(r"0|[1-9][0-9]*")
_SIMPLE_LINE = re.compile(r"([A-Za-z_][A-Za-z0-9_\-]*(?:\.(?:[A-Za-z_][A-Za-z0-9_\-]*|0|[1-9][0-9]*))*)"
                          r"=([^\s'\"]+)")
_INT_TEXT = re.compile(r"[+-]?(?:0|[1-9][0-9]*)")
_POINT_FLOAT = r"(?:(?:0|[1-9][0-9]*)\.|(?:0|[1-9][0-9]*)?\.[0-9]+)"
_FLOAT_TEXT = re.compile(rf"[+-]?(?:(?:0|[1-9][0-9]*|{_POINT_FLOAT})[eE][+-]?[0-9]+|{_POINT_FLOAT})")
_BOOL_TEXT = {"true": True, "false": False}


def _simple_override(line: str) -> Optional[Override]:
    """The Override Hydra's parser makes of `line` when it is `key=number` or `key=bool`, else
    None (tests/test_batched_launcher.py compares the two on many lines)."""
    m = _SIMPLE_LINE.fullmatch(line)
    if m is None:
        return None
    key, text = m.groups()
    if _INT_TEXT.fullmatch(text):
        value: Any = int(text)
    elif _FLOAT_TEXT.fullmatch(text):
        value = float(text)
    elif text.lower() in _BOOL_TEXT:
        value = _BOOL_TEXT[text.lower()]
    else:
        return None
    return Override(type=OverrideType.CHANGE, key_or_group=key, value_type=ValueType.ELEMENT,
                    _value=value, input_line=line)


# leaf values whose conversion by their config node depends on nothing but the node's type
_PROBED_TYPES = (float, int, bool)


def _value_node(base: Base, path: tuple):
    """The typed node of the base's run config at `path`, if it is a plain value node (what
    converts a number or bool set at that key), else _NOT_A_LEAF."""
    from omegaconf import ValueNode

    cfg = pickle.loads(base.task)
    node = cfg
    try:
        for k in path:
            node = node._get_node(int(k) if _INDEX.fullmatch(k) and not isinstance(node, DictConfig) else k)
    except Exception:  # noqa: BLE001
        return _NOT_A_LEAF
    return node if isinstance(node, ValueNode) and not node._is_interpolation() else _NOT_A_LEAF


def _is_env_set_addition(o: Override) -> bool:
    """`+hydra.job.env_set.NAME=v` or `++...`, v a string or number: Hydra stores str(v)."""
    name = o.key_or_group[len(ENV_SET):] if o.key_or_group.startswith(ENV_SET) else ""
    return (bool(name) and "." not in name and o.package is None
            and (o.is_add() or o.is_force_add())
            and isinstance(o.value(), (str, int, float, bool)))


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
