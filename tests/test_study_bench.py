"""benchmarks/study_bench.py's floor for the fastest-convergence study: its sampler alone, replaying
a study's journal, draws that study's trials again."""
import importlib.util
import sys

import pytest

from conftest import ROOT, run_cli


def _bench():
    spec = importlib.util.spec_from_file_location("study_bench", ROOT / "benchmarks" / "study_bench.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["study_bench"] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.parametrize("overlap", ["true", "false"])
def test_the_sampler_alone_replaying_a_study_draws_its_trials(tmp_path, overlap):
    journal = tmp_path / "fc.log"
    proc = run_cli("rnnexp-train", "-m", "--config-name", "fastest_convergence",
                   "hydra/launcher=batched", "hydra.sweeper.n_trials=40", "hydra.sweeper.n_jobs=8",
                   f"hydra.sweeper.overlap={overlap}", "train.epochs=30",
                   f"hydra.sweeper.storage={journal}", "hydra.sweeper.study_name=fc",
                   f"hydra.sweep.dir={tmp_path / 'fc'}", cwd=tmp_path, env={"PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    seconds, same, total, target = _bench().replay_journal(journal, "fc")
    # past TPE's startup trials, so the replayed trials come from its model of the told ones
    assert total >= 40 and target == "TPESampler"
    assert same == total
    assert seconds > 0
