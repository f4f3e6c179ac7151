"""The one training loop. A single run, a sweep job, an Optuna trial and a batched member all go
through `train_group`: a group of compatible configs trained by one engine, epoch by epoch.

An epoch is one full-batch forward/backward/update over the word, from h_0 = 0. The loss of every
epoch is recorded, and whether the teacher-forced argmax spells the word (which for an RNN is
exactly whether greedy generation from the first character reproduces it).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from omegaconf import DictConfig

from rnnexp import checkpoint
from rnnexp.results import write_run
from rnnexp.config import TORCH_CELLS, ConfigError, model_args, optimizer_args, plain, validate
from rnnexp.converge import epochs_to_converge
from rnnexp.data import make_example
from rnnexp.engine import BOOL_OPTIMIZER_ARGS, GroupSpec, MemberSpec
from rnnexp.generate import generate, layers_from
from rnnexp.tuning.hooks import EpochHook



@dataclass
class RunResult:
    metrics: dict
    loss: np.ndarray  # (epochs run,) float64
    spelled: np.ndarray  # (epochs run,) bool
    params: dict  # trained weights in the model's own format (NumPy arrays)
    vocab: tuple  # the characters, index order


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: cuda was asked for but torch sees no CUDA device, got 'cuda'")
    return device


def group_spec(cfg: DictConfig, word: str) -> GroupSpec:
    """What `cfg` shares with every config it can be batched with."""
    ex = make_example(word)
    return GroupSpec(
        model=cfg.model.name, vocab_size=len(ex.vocab),
        inputs=tuple(ex.inputs.tolist()), targets=tuple(ex.targets.tolist()),
        hidden_size=cfg.model.hidden_size, bias=cfg.model.bias,
        model_args=tuple((k, cfg.model[k]) for k in model_args(cfg.model.name)),
        dtype=cfg.dtype, device=resolve_device(cfg.device))


def member_spec(cfg: DictConfig) -> MemberSpec:
    """What `cfg` owns in a batch: its seed and its optimizer."""
    args = optimizer_args(cfg.optimizer)
    return MemberSpec(seed=int(cfg.seed), optimizer=cfg.optimizer.name,
                      hparams={k: v for k, v in args.items() if k not in BOOL_OPTIMIZER_ARGS},
                      flags=tuple((k, bool(v)) for k, v in args.items() if k in BOOL_OPTIMIZER_ARGS))


def default_engine(group: GroupSpec, n_members: int):
    """NumPy model: the stacked NumPy engine (a single run is M = 1). torch models: the nn module
    (nn.RNN, nn.GRU or nn.LSTM) with torch.optim for one member, the stacked torch engine for a
    batch."""
    if group.model == "numpy_rnn":
        from rnnexp.engine.numpy_engine import NumpyEngine
        return NumpyEngine
    if n_members == 1:
        from rnnexp.engine.torch_single import TorchModuleEngine
        return TorchModuleEngine
    from rnnexp.engine.torch_stack import TorchStackEngine
    return TorchStackEngine


class TrialVoices:
    """The hooks of a batch, one voice per Optuna trial: the members of one trial (its seeds)
    stop together, on the decision of the trial's lead seed where it trains in this batch, else of
    one of its other seeds (which reads the lead's decision from the storage). A voice is heard
    only at the epochs its hook reports, so most epochs cost no Python call per member. A hook
    without a trial (`trial_key`) is a voice of its own, heard every epoch."""

    def __init__(self, hooks: Sequence[Optional[EpochHook]]):
        trials: dict = {}  # trial key -> member indices, in batch order
        for m, hook in enumerate(hooks):
            if hook is not None:
                trials.setdefault(getattr(hook, "trial_key", ("member", m)), []).append(m)
        self.voices = []  # (speaking member, its hook, every member it speaks for, report_every)
        for members in trials.values():
            leads = [m for m in members if getattr(hooks[m], "lead", False)]
            speaker = leads[0] if leads else members[0]
            self.voices.append((speaker, hooks[speaker], members,
                                int(getattr(hooks[speaker], "report_every", 1))))

    def __bool__(self) -> bool:
        return bool(self.voices)

    def stopped(self, epoch: int, loss_of: dict[int, float]) -> list[int]:
        """Members (original indices) to stop as pruned after `epoch`; loss_of: the members still
        training, with this epoch's finite loss."""
        out = []
        for speaker, hook, members, every in self.voices:
            if speaker not in loss_of or (epoch % every and epoch != 1):
                continue  # gone (diverged, so never pruned) or not a reporting epoch
            if hook.report(epoch, loss_of[speaker]):
                out += [m for m in members if m in loss_of]
        return out


def run_loop(engine, n_members: int, epochs: int, hooks: Sequence[Optional[EpochHook]]):
    """Drive `engine` for `epochs` epochs. Members whose loss is not finite stop as "diverged";
    members whose trial's hook says so stop as "pruned" (TrialVoices); the others carry on.

    Returns loss (M, epochs) with NaN after a member stopped, spelled (M, epochs), epochs run (M,),
    status (M,), and the exported weights of each member.
    """
    loss = np.full((n_members, epochs), np.nan)
    spelled = np.zeros((n_members, epochs), dtype=bool)
    ran = np.full(n_members, epochs)
    status = ["completed"] * n_members
    params: list[Optional[dict]] = [None] * n_members
    active = np.arange(n_members)  # original index of each member still in the batch
    voices = TrialVoices(hooks)

    for epoch in range(1, epochs + 1):
        step_loss, step_spelled = engine.step()
        loss[active, epoch - 1] = step_loss
        spelled[active, epoch - 1] = step_spelled
        stop = ~np.isfinite(step_loss)
        for j in np.flatnonzero(stop):
            status[active[j]] = "diverged"
        if voices:
            position = {m: j for j, m in enumerate(active)}
            alive = {int(m): float(step_loss[j]) for j, m in enumerate(active) if not stop[j]}
            for m in voices.stopped(epoch, alive):
                stop[position[m]] = True
                status[m] = "pruned"
        if stop.any():
            for j in np.flatnonzero(stop):
                params[active[j]] = engine.export(int(j))
                ran[active[j]] = epoch
            engine.keep(~stop)
            active = active[~stop]
            if len(active) == 0:
                break
    for j, m in enumerate(active):
        params[m] = engine.export(j)
    return loss, spelled, ran, status, params


def summarize(cfg: DictConfig, word: str, vocab: tuple, loss: np.ndarray, spelled: np.ndarray,
              status: str, params: dict, wall_time_s: float) -> dict:
    """metrics.json for one run."""
    finite = loss[np.isfinite(loss)]
    etc = epochs_to_converge(loss, spelled, cfg.converge.loss_below) if status == "completed" else None
    index = {c: i for i, c in enumerate(vocab)}
    net = layers_from(params, cfg.model.get("nonlinearity", "tanh"),
                      TORCH_CELLS.get(cfg.model.name, "rnn"))
    generated = "".join(vocab[i] for i in generate(net, [index[word[0]]], len(word)))
    return {
        "word": word,
        "model": cfg.model.name,
        "hidden_size": int(cfg.model.hidden_size),
        "bias": bool(cfg.model.bias),
        "model_args": {k: cfg.model[k] for k in model_args(cfg.model.name)},
        "optimizer": cfg.optimizer.name,
        "optimizer_args": {k: list(v) if isinstance(v, tuple) else v
                           for k, v in optimizer_args(cfg.optimizer).items()},
        "seed": int(cfg.seed),
        "dtype": cfg.dtype,
        "epochs": int(cfg.train.epochs),
        "epochs_run": int(len(loss)),
        "final_loss": float(loss[-1]) if len(loss) else None,
        "min_loss": float(finite.min()) if len(finite) else None,
        "epochs_to_converge": etc,
        "converged": etc is not None,
        "generated": generated,
        "spells_word": generated == word,
        "status": status,
        "wall_time_s": round(wall_time_s, 6),
    }


def summary_line(m: dict) -> str:
    converged = (f"converged at epoch {m['epochs_to_converge']}" if m["converged"]
                 else "did not converge")
    loss = "nan" if m["final_loss"] is None else f"{m['final_loss']:.6g}"
    return (f"{m['model']} h={m['hidden_size']} {m['optimizer']} lr={m['optimizer_args']['lr']:g} "
            f"seed={m['seed']}: {m['status']}, final loss {loss}, {converged}, "
            f"generates {m['generated']!r} ({m['wall_time_s']:.2f} s)")


def train_group(cfgs: Sequence[DictConfig], hooks: Optional[Sequence[Optional[EpochHook]]] = None,
                engine_cls: Optional[Callable] = None) -> list[RunResult]:
    """Train configs that share one GroupSpec as one batch; one RunResult per config."""
    cfgs = [plain(c) for c in cfgs]  # read thousands of values without DictConfig overhead
    words = [validate(c) for c in cfgs]
    groups = {group_spec(c, w) for c, w in zip(cfgs, words)}
    epochs = {int(c.train.epochs) for c in cfgs}
    if len(groups) != 1 or len(epochs) != 1:
        raise ValueError("train_group needs configs that share model, word, sizes, dtype, "
                         "device and epochs")
    (group,), (n_epochs,) = groups, epochs
    hooks = list(hooks) if hooks is not None else [None] * len(cfgs)
    engine_cls = engine_cls or default_engine(group, len(cfgs))

    start = time.perf_counter()
    engine = engine_cls(group, [member_spec(c) for c in cfgs])
    loss, spelled, ran, status, params = run_loop(engine, len(cfgs), n_epochs, hooks)
    wall = (time.perf_counter() - start) / len(cfgs)  # a batch's time, shared out per member

    vocab = make_example(words[0]).vocab.chars
    results = []
    for m, cfg in enumerate(cfgs):
        l, s = loss[m, :ran[m]], spelled[m, :ran[m]]
        metrics = summarize(cfg, words[m], vocab, l, s, status[m], params[m], wall)
        results.append(RunResult(metrics, l, s, params[m], vocab))
    return results


def save_result(run_dir: Path, result: RunResult, cfg: DictConfig) -> None:
    """Everything a run leaves in its dir: model.npz (unless train.checkpoint=false), history.csv,
    then metrics.json, whose presence marks the run as done."""
    if cfg.train.checkpoint:
        meta = {"model": cfg.model.name, "model_args": result.metrics["model_args"],
                "word": result.metrics["word"], "hidden_size": int(cfg.model.hidden_size),
                "bias": bool(cfg.model.bias)}
        checkpoint.save(run_dir, result.params, result.vocab, meta)
    write_run(run_dir, result.metrics, result.loss, result.spelled)


def train(cfg: DictConfig, hook: Optional[EpochHook] = None) -> RunResult:
    """One run: validate the config, train, and return metrics, history and weights."""
    return train_group([cfg], [hook])[0]
