"""Errors as one readable line. Every console script prints a failure through `one_line`; every
value check raises through `require`. (No imports at the top: the models use this module too.)"""
from __future__ import annotations


OWN_MODULES = ("rnnexp.", "hydra_plugins.rnnexp_")


def _parse_error_line(e) -> str:
    override = str(e).strip().splitlines()[0].split(": ", 1)[-1]
    return (f"cannot parse override {override!r}; quote values that hold spaces, non-ASCII or "
            f"special characters, e.g. word='naïve café'")


def _missing_option_line(e) -> str:
    text = " ".join(str(e).split("Config search path")[0].split())
    options = [o for o in (e.options or []) if not o.startswith("_")]
    head = text.split(" Available options")[0]
    return f"{head}; available: {', '.join(options)}" if options else head


def one_line(exc: BaseException) -> str:
    """The most specific line of an error and of its causes, naming the key where OmegaConf knows it."""
    from hydra.errors import MissingConfigException, OverrideParseException

    if isinstance(exc, OverrideParseException):
        return _parse_error_line(exc)
    if isinstance(exc, MissingConfigException):
        return _missing_option_line(exc)
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.strerror or type(exc).__name__}: {str(exc.filename)!r}"
    chain = []
    while exc is not None:
        chain.append(exc)
        # the cause, else the exception being handled unless `raise ... from None` hid it
        exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    for e in chain:  # rnnexp's own errors say it best, also when Hydra wrapped them
        if type(e).__module__.startswith(OWN_MODULES) and str(e).strip():
            return str(e).strip().splitlines()[0]
    for e in reversed(chain):  # the root cause first: it names the key
        key = getattr(e, "full_key", None)
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if key:
            return f"{msg} (key: {key})"
    first = chain[0]
    lines = [ln.strip() for ln in str(first).strip().splitlines() if ln.strip()]
    return " ".join(lines) if lines else type(first).__name__


def require(ok: bool, key: str, rule: str, value, error: type[Exception] = ValueError) -> None:
    """The one shape of a value check: `<key>: <rule>, got <value>` raised as `error`."""
    if not ok:
        raise error(f"{key}: {rule}, got {value!r}")
