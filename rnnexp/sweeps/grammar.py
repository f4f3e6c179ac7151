"""Values and keys in Hydra's override grammar, and one comparable form for config values.

Every place that turns a value into override text (sweep commands, the Optuna sweeper's suggested
values, the study's validation runs) goes through `hydra_value`, so a value reads back as itself.
"""
from __future__ import annotations

import json
import math
import re
from typing import Any, Mapping

_BARE = re.compile(r"[A-Za-z_/.][A-Za-z0-9_./-]*\Z")  # words and paths need no quotes
_NOT_STRINGS = {"true", "false", "null", "inf", "nan"}


def hydra_value(v: Any) -> str:
    """A Python value in Hydra's override grammar: strings quoted unless plain words."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(hydra_value(x) for x in v) + "]"
    s = str(v)
    if _BARE.match(s) and s.lower() not in _NOT_STRINGS and not _is_float(s):
        return s
    return quoted(s)


def quoted(text: str) -> str:
    """Override text that Hydra reads back as exactly this string (never as a number or bool)."""
    # Hydra unescapes backslashes only before a quote or the closing quote
    text = re.sub(r'(\\+)("|$)', lambda m: m.group(1) * 2 + m.group(2), text)
    return '"' + text.replace('"', '\\"') + '"'


def _is_float(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def override(key: str, value: Any) -> str:
    return f"{key}={hydra_value(value)}"


def sweep_override(key: str, values) -> str:
    return f"{key}={','.join(hydra_value(v) for v in values)}"


def canonical(value):
    """One comparable form for a config value from YAML, JSON, CSV or a sweep file:
    None/NaN -> None, numbers -> float, lists -> their JSON text."""
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return None if isinstance(value, float) and math.isnan(value) else float(value)
    if isinstance(value, (list, tuple)):
        return json.dumps([canonical(x) for x in value])
    if hasattr(value, "item"):  # NumPy scalars
        return canonical(value.item())
    return value


def flatten(tree: Mapping[str, Any] | None, prefix: str = "") -> dict[str, Any]:
    """{"optimizer": {"lr": 0.1}} -> {"optimizer.lr": 0.1}: nested mappings as dotted keys, the
    way overrides name them. A mapping is never a value, so nesting is unambiguous."""
    out: dict[str, Any] = {}
    for key, value in (tree or {}).items():
        full = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, full + "."))
        else:
            out[full] = value
    return out
