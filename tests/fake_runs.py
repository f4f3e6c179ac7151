"""Synthetic run dirs, laid out as rnnexp-train leaves them (.hydra/config.yaml, metrics.json,
history.csv), with made-up numbers: for collection and report tests that must not train."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from rnnexp.results import write_run
from rnnexp.sweeps import Setting, setting_config

MODEL_DEFAULTS = (("word", "edgement"), ("model", "torch_rnn"), ("optimizer", "rmsprop"),
                  ("train.epochs", 20))


def fake_run(run_dir: Path, values: dict, seed: int = 0, final_loss: float = 0.1,
             generated: str = "edgement", spelled_from: int = 5, epochs: int | None = None) -> Path:
    """A finished run whose config is rnnexp-train's for `values` (sweep-style keys) and whose
    loss falls geometrically from 2.0 to `final_loss`."""
    merged = dict(MODEL_DEFAULTS)
    merged.update(values)
    items = tuple(merged.items())
    cfg = setting_config(Setting("fake", (), items, ()))
    cfg.seed = seed
    n = int(epochs or cfg.train.epochs)
    run_dir = Path(run_dir)
    (run_dir / ".hydra").mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")
    loss = np.geomspace(2.0, final_loss, n) if final_loss > 0 else np.linspace(2.0, 0.0, n)
    spelled = np.arange(1, n + 1) >= spelled_from
    metrics = {
        "word": cfg.word, "model": cfg.model.name, "hidden_size": cfg.model.hidden_size,
        "bias": cfg.model.bias, "model_args": {}, "optimizer": cfg.optimizer.name,
        "optimizer_args": {"lr": cfg.optimizer.lr}, "seed": seed, "dtype": cfg.dtype,
        "epochs": n, "epochs_run": n, "final_loss": float(loss[-1]), "min_loss": float(loss.min()),
        "epochs_to_converge": None, "converged": False, "generated": generated,
        "spells_word": generated == cfg.word, "status": "completed", "wall_time_s": 0.01,
    }
    write_run(run_dir, metrics, loss, spelled)
    return run_dir
