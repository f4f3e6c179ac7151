"""Console entry points. `rnnexp-train` is a Hydra app over conf/; errors come out as one line."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import MissingConfigException, OverrideParseException
from omegaconf import DictConfig

from rnnexp.artifacts import read_done
from rnnexp.config import register_configs, validate

CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")

register_configs()


def summary_line(m: dict) -> str:
    converged = (f"converged at epoch {m['epochs_to_converge']}" if m["converged"]
                 else "did not converge")
    loss = "nan" if m["final_loss"] is None else f"{m['final_loss']:.6g}"
    return (f"{m['model']} h={m['hidden_size']} {m['optimizer']} lr={m['optimizer_args']['lr']:g} "
            f"seed={m['seed']}: {m['status']}, final loss {loss}, {converged}, "
            f"generates {m['generated']!r} ({m['wall_time_s']:.2f} s)")


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def train_app(cfg: DictConfig) -> dict:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    if cfg.train.skip_done and (done := read_done(run_dir)) is not None:
        print(f"{run_dir}: done before, skipped")
        return done
    validate(cfg)  # before importing torch: a bad value is reported in a fraction of a second
    from rnnexp.hooks import hook_for
    from rnnexp.train import save_result, train

    result = train(cfg, hook_for(cfg))
    save_result(run_dir, result, cfg)
    print(summary_line(result.metrics))
    return result.metrics


def _parse_error_line(e: OverrideParseException) -> str:
    override = str(e).strip().splitlines()[0].split(": ", 1)[-1]
    return (f"cannot parse override {override!r}; quote values that hold spaces, non-ASCII or "
            f"special characters, e.g. word='naïve café'")


def _missing_option_line(e: MissingConfigException) -> str:
    text = " ".join(str(e).split("Config search path")[0].split())
    options = [o for o in (e.options or []) if not o.startswith("_")]
    head = text.split(" Available options")[0]
    return f"{head}; available: {', '.join(options)}" if options else head


def one_line(exc: BaseException) -> str:
    """The most specific line of an error and of its causes, naming the key where OmegaConf knows it."""
    if isinstance(exc, OverrideParseException):
        return _parse_error_line(exc)
    if isinstance(exc, MissingConfigException):
        return _missing_option_line(exc)
    chain = []
    while exc is not None:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    for e in reversed(chain):  # the root cause first: it names the key
        key = getattr(e, "full_key", None)
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if key:
            return f"{msg} (key: {key})"
    first = chain[0]
    lines = [ln.strip() for ln in str(first).strip().splitlines() if ln.strip()]
    return " ".join(lines) if lines else type(first).__name__


class _DropJobErrorBanner:
    """stderr without the "Error executing job with overrides: ..." line Hydra writes before
    re-raising a job's exception: run_cli prints its own one-line message instead."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        if text.startswith("Error executing job with overrides"):
            return len(text)
        return self._stream.write(text)

    def __getattr__(self, name):
        return getattr(self._stream, name)


def run_cli(app, prog: str) -> None:
    """Run a Hydra app; without HYDRA_FULL_ERROR=1 a failure prints one line and exits 2."""
    full = os.environ.get("HYDRA_FULL_ERROR") == "1"
    os.environ["HYDRA_FULL_ERROR"] = "1"  # let the exception reach us instead of Hydra's report
    if not full:
        sys.stderr = _DropJobErrorBanner(sys.stderr)
    try:
        app()
    except Exception as e:  # noqa: BLE001 - every failure becomes one readable line
        if full:
            raise
        print(f"{prog}: error: {one_line(e)}", file=sys.stderr)
        sys.exit(2)


def train_main() -> None:
    run_cli(train_app, "rnnexp-train")


if __name__ == "__main__":
    train_main()
