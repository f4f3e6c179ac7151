"""YAML text of plain containers, byte for byte what `OmegaConf.to_yaml` writes, but fast.

OmegaConf.to_yaml runs PyYAML's pure-Python emitter over the whole tree: about 1 ms for a run's
config and 4 ms for the hydra node, per job. The job files of a sweep differ in a handful of
scalars, so here PyYAML (with OmegaConf's dumper) renders each distinct scalar once, cached, and
this module only lays out block mappings and sequences, the way PyYAML does with
default_flow_style=False: two-space indents, sequences inside mappings not indented, `{}` / `[]`
for empty ones.

A scalar whose text could depend on where it stands (a string with whitespace, which PyYAML may
fold across lines, or with unprintable characters) raises NotPlain; callers then fall
back to OmegaConf's own dumper for that document or subtree, so the output is always exact.
"""
from __future__ import annotations

from typing import Any

import re

import yaml
from omegaconf._utils import get_omega_conf_dumper, is_float, is_int, yaml_is_bool

_DUMPER = get_omega_conf_dumper()
_SCALARS = (str, int, float, bool, type(None))


class NotPlain(Exception):
    """This container holds something whose layout is left to PyYAML."""


def dump(obj: Any) -> str:
    """PyYAML's text for a plain container, with the options OmegaConf.to_yaml uses."""
    return yaml.dump(obj, Dumper=_DUMPER, default_flow_style=False, allow_unicode=True,
                     sort_keys=False)


# Strings PyYAML writes as they are: a letter, "_" or "/" first (so no indicator, number, date or
# ".inf"), then no character that could start a comment, a mapping value or a tag; those that read
# as a bool, a number or null are left to PyYAML (OmegaConf's dumper quotes them).
_PLAIN = re.compile(r"[A-Za-z_/][A-Za-z0-9_./,=+\-]*")
_value_text: dict[tuple[type, Any], str] = {}
_key_text: dict[tuple[type, Any], str] = {}


def _is_context_free(value: Any) -> bool:
    """PyYAML folds long scalars at spaces only (double-quoted ones anywhere, but that style is
    chosen only for unprintable characters), so without either a scalar reads the same anywhere."""
    if isinstance(value, str):
        return value.isprintable() and not any(c.isspace() for c in value)
    return isinstance(value, _SCALARS)


def _cache_key(value: Any) -> tuple:
    # by type (1, 1.0 and True render differently) and, for floats, by repr (0.0 == -0.0)
    return (type(value), repr(value) if isinstance(value, float) else value)


def _is_plain(s: str) -> bool:
    return (_PLAIN.fullmatch(s) is not None and not yaml_is_bool(s) and not is_int(s)
            and not is_float(s) and s.lower() not in ("null", "~"))


def value_text(value: Any) -> str:
    """A scalar as PyYAML writes it after "key: " or "- "."""
    if type(value) is int:  # job numbers: one per job, not worth a cache entry
        return str(value)
    if type(value) is str and value.isdigit() and value.isascii():  # job ids: read as ints, so quoted
        return f"'{value}'"
    if type(value) is str and len(value) > 40 and _is_plain(value):  # paths, override dirnames:
        return value  # mostly one per job, so checked each time rather than cached
    key = _cache_key(value)
    text = _value_text.get(key)
    if text is None:
        if len(_value_text) > 100_000:  # per-job strings would otherwise pile up
            _value_text.clear()
        if type(value) is str and _is_plain(value):  # overrides, names
            _value_text[key] = value
            return value
        if not _is_context_free(value):
            raise NotPlain(repr(value))
        out = dump([value])  # "- <text>\n"
        if not out.startswith("- ") or out.count("\n") != 1:
            raise NotPlain(repr(value))
        text = _value_text[key] = out[2:-1]
    return text


def key_text(key: Any) -> str:
    """A mapping key as PyYAML writes it before ":"."""
    k = _cache_key(key)
    text = _key_text.get(k)
    if text is None:
        if not _is_context_free(key):
            raise NotPlain(repr(key))
        out = dump({key: None})  # "<text>: null\n"
        if not out.endswith(": null\n") or out.count("\n") != 1 or out.startswith("?"):
            raise NotPlain(repr(key))
        text = _key_text[k] = out[: -len(": null\n")]
    return text


def _entry(pad: str, head: str, value: Any, indent: int, out: list[str]) -> None:
    """`head` ("key:" or "-") followed by `value`, at column `indent`."""
    if isinstance(value, dict):
        if not value:
            out.append(f"{pad}{head} {{}}")
        elif head == "-":
            _first_line_after_dash(pad, value, indent, out)
        else:
            out.append(pad + head)
            _mapping(value, indent + 2, out)
    elif isinstance(value, list):
        if not value:
            out.append(f"{pad}{head} []")
        elif head == "-":
            _first_line_after_dash(pad, value, indent, out)
        else:
            out.append(pad + head)
            _sequence(value, indent, out)  # a sequence in a mapping is not indented
    else:
        out.append(f"{pad}{head} {value_text(value)}")


def _first_line_after_dash(pad: str, value: Any, indent: int, out: list[str]) -> None:
    """A non-empty mapping or sequence as a sequence item: its first line shares the dash's."""
    start = len(out)
    (_mapping if isinstance(value, dict) else _sequence)(value, indent + 2, out)
    out[start] = pad + "- " + out[start][indent + 2:]


def _mapping(d: dict, indent: int, out: list[str]) -> None:
    pad = " " * indent
    for k, v in d.items():
        _entry(pad, key_text(k) + ":", v, indent, out)


def _sequence(items: list, indent: int, out: list[str]) -> None:
    pad = " " * indent
    for v in items:
        _entry(pad, "-", v, indent, out)


def to_yaml(obj: dict | list) -> str:
    """The document for a plain dict or list; raises NotPlain where PyYAML must lay it out."""
    if not obj:
        return "{}\n" if isinstance(obj, dict) else "[]\n"
    out: list[str] = []
    (_mapping if isinstance(obj, dict) else _sequence)(obj, 0, out)
    return "\n".join(out) + "\n"


def to_yaml_exact(obj: dict | list) -> str:
    """to_yaml where it can, PyYAML where it must: always PyYAML's text."""
    try:
        return to_yaml(obj)
    except NotPlain:
        return dump(obj)


def mapping_entry(key: str, value: Any, indent: int) -> str:
    """The lines of one `key: value` entry of a block mapping at column `indent`, as PyYAML writes
    them (entries of a block mapping are laid out independently of their siblings)."""
    try:
        out: list[str] = []
        _entry(" " * indent, key_text(key) + ":", value, indent, out)
        return "\n".join(out) + "\n"
    except NotPlain:
        nested: Any = {key: value}
        for _ in range(indent // 2):
            nested = {"_": nested}
        text = dump(nested)
        return text.split("\n", indent // 2)[-1]  # drop the wrapper keys' lines


_ABSENT = object()


def to_yaml_sharing(d: dict, base: dict, cache: dict) -> str:
    """to_yaml_exact(d) for a mapping that shares subtrees (the same objects) with `base`: the text
    of every entry `d` shares with `base` is rendered once and kept in `cache`, by its path (so
    one cache serves one base). Only the entries on the paths where `d` differs are laid out."""
    if not d:
        return "{}\n"
    return "".join(_entries_sharing(d, base, cache, 0, ()))


def _entries_sharing(d: dict, base: Any, cache: dict, indent: int, path: tuple) -> list[str]:
    parts = []
    for k, v in d.items():
        b = base.get(k, _ABSENT) if isinstance(base, dict) else _ABSENT
        if v is b:
            where = path + (k,)
            text = cache.get(where)
            if text is None:
                text = cache[where] = mapping_entry(k, v, indent)
            parts.append(text)
            continue
        if isinstance(v, dict) and v and isinstance(b, dict):
            try:
                head = key_text(k)
            except NotPlain:
                parts.append(mapping_entry(k, v, indent))
                continue
            parts.append(f"{' ' * indent}{head}:\n")  # a non-empty mapping: its entries below
            parts.extend(_entries_sharing(v, b, cache, indent + 2, path + (k,)))
            continue
        parts.append(mapping_entry(k, v, indent))
    return parts
