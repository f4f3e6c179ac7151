import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from rnnexp.configs import SWEEPS_DIR, TABLES_DIR, TRAIN_DIR

ROOT = Path(__file__).resolve().parent.parent
CONF = TRAIN_DIR


@pytest.fixture
def make_cfg():
    """Compose conf/ with overrides, the way rnnexp-train does."""
    from rnnexp.config import register_configs

    register_configs()

    def _make(*overrides: str):
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            return compose(config_name="config", overrides=list(overrides))

    return _make


def run_cli(*args: str, cwd: Path, env: dict | None = None, timeout: float = 300):
    """Run a console script of this checkout in a real subprocess."""
    script, *rest = args
    cmd = [str(Path(sys.executable).parent / script), *rest]
    full_env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    full_env.update(env or {})
    return subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=True, text=True,
                          timeout=timeout)
