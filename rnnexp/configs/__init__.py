"""The YAML that ships inside the package, found wherever rnnexp is installed.

    train/    rnnexp-train's Hydra config (config.yaml, model/, optimizer/), typed by rnnexp.config
    sweeps/   the report's studies as Hydra primary configs (fastest_convergence.yaml, hydra/...),
              and tables/: one sweep file per table of the report (rnnexp.sweeps reads them)

In a source checkout `conf` and `sweeps` at the repository root point here, so
`rnnexp-train -m --config-dir sweeps --config-name fastest_convergence` works from the root.
"""
from __future__ import annotations

import os
from pathlib import Path

HERE = Path(__file__).resolve().parent
TRAIN_DIR = HERE / "train"
SWEEPS_DIR = HERE / "sweeps"
TABLES_DIR = SWEEPS_DIR / "tables"
SWEEPS_ENV = "RNNEXP_SWEEPS_DIR"  # a folder of table sweep files of your own instead of tables/


def tables_dir() -> Path:
    """Where the table sweep files are read from: $RNNEXP_SWEEPS_DIR, else the packaged tables/."""
    return Path(os.environ.get(SWEEPS_ENV) or TABLES_DIR)
