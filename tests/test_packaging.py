"""`pip install .` as a user does it: build the wheel, install it into a fresh venv, and from an
empty directory run a tiny train, a tiny study and a quick reproduction of one table. Nothing may
come from the source checkout: the configs and sweep files travel inside the package."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def run(cmd: list[str], cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "HYDRA_FULL_ERROR")}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The bin dir of a fresh venv holding rnnexp installed from its wheel."""
    base = tmp_path_factory.mktemp("wheel")
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(base / "dist"),
         str(ROOT)], cwd=base)
    wheel, = (base / "dist").glob("rnnexp-*.whl")
    run([sys.executable, "-m", "venv", str(base / "venv")], cwd=base)
    run([str(base / "venv" / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)], cwd=base)
    return base / "venv" / "bin"


def installed_files(bin_dir: Path) -> set[str]:
    """Every file of the venv's site-packages but Python's bytecode caches."""
    lib = bin_dir.parent / "lib"
    return {str(p.relative_to(lib)) for p in lib.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts}


def test_the_installed_package_runs_from_an_empty_directory(installed, tmp_path):
    before = installed_files(installed)
    where = run([str(installed / "python"), "-c", "import rnnexp, hydra_plugins.rnnexp_batched_launcher as b; "
                 "print(rnnexp.__file__); print(b.__file__)"], cwd=tmp_path).stdout
    assert str(ROOT) not in where and "site-packages" in where

    train = run([str(installed / "rnnexp-train"), "word=hello", "train.epochs=5",
                 "hydra.run.dir=one"], cwd=tmp_path)
    assert "completed" in train.stdout and (tmp_path / "one" / "metrics.json").is_file()

    # the packaged fastest-convergence study, found by name (no --config-dir: no checkout here)
    study = run([str(installed / "rnnexp-train"), "-m", "--config-name", "fastest_convergence",
                 "hydra.sweeper.n_trials=4", "hydra.sweeper.n_jobs=2", "hydra.sweeper.study_name=tiny",
                 "hydra.sweeper.seeds=[0]", "train.epochs=5", "hydra.sweep.dir=sweep"], cwd=tmp_path)
    assert (tmp_path / "results" / "studies" / "tiny.log").is_file(), study.stdout
    assert (tmp_path / "sweep" / "optimization_results.yaml").is_file()

    reproduce = run([str(installed / "rnnexp-reproduce"), "--quick", "--only", "q2ii_tuned"],
                    cwd=tmp_path)
    assert "report: results/REPORT.md" in reproduce.stdout
    assert (tmp_path / "results" / "tables" / "q2ii_tuned.csv").is_file()
    assert installed_files(installed) == before  # nothing written into the install
