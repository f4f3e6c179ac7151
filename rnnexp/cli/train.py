"""rnnexp-train: the Hydra app over rnnexp/configs/train (one run, or -m for sweeps and studies)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from rnnexp.cli import FULL_ERROR, full_errors, guarded
from rnnexp.config import register_configs, validate
from rnnexp.configs import TRAIN_DIR
from rnnexp.results import read_done

register_configs()


@hydra.main(version_base="1.3", config_path=str(TRAIN_DIR), config_name="config")
def train_app(cfg: DictConfig) -> dict:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    if cfg.train.skip_done and (done := read_done(run_dir)) is not None:
        print(f"{run_dir}: done before, skipped")
        return done
    validate(cfg)  # before importing torch: a bad value is reported in a fraction of a second
    from rnnexp.tuning.hooks import hook_for
    from rnnexp.train import save_result, summary_line, train

    result = train(cfg, hook_for(cfg))
    save_result(run_dir, result, cfg)
    print(summary_line(result.metrics))
    return result.metrics


class _DropJobErrorBanner:
    """stderr without the "Error executing job with overrides: ..." line Hydra writes before
    re-raising a job's exception: `guarded` prints its own one-line message instead."""

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
    full = full_errors()
    os.environ[FULL_ERROR] = "1"  # let the exception reach us instead of Hydra's report
    if not full:
        sys.stderr = _DropJobErrorBanner(sys.stderr)
    guarded(prog, app, full=full)


def train_main() -> None:
    run_cli(train_app, "rnnexp-train")


if __name__ == "__main__":
    train_main()
