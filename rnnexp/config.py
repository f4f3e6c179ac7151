"""Typed config schemas (registered in Hydra's ConfigStore) and value checks.

The YAML files under conf/ extend these schemas, so an unknown key or a wrong type fails when the
config is composed, with OmegaConf naming the key. Values that are well typed but meaningless
(lr <= 0, alpha > 1, a one-letter word, ...) are caught by `validate`, which raises ConfigError with
a one-line message that names the key.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from rnnexp.errors import require


class ConfigError(ValueError):
    """A config value that cannot be run; the message names the key."""


# ---------------------------------------------------------------- models

@dataclass
class NumpyRNNConfig:
    name: str = "numpy_rnn"
    hidden_size: int = 50
    bias: bool = True
    init: str = "randn"  # randn: N(0,1)*0.01 | uniform: U(+-sqrt(1/fan_in)); biases start at 0
    loss_reduction: str = "sum"  # sum over time steps (the course code) | mean per character
    clip: Optional[float] = 5.0  # clip gradients to +-clip in the update; null = off


@dataclass
class TorchRNNConfig:
    name: str = "torch_rnn"
    hidden_size: int = 5
    bias: bool = True
    num_layers: int = 1
    nonlinearity: str = "tanh"


@dataclass
class TorchGRUConfig:
    name: str = "torch_gru"
    hidden_size: int = 5
    bias: bool = True
    num_layers: int = 1


@dataclass
class TorchLSTMConfig(TorchGRUConfig):
    name: str = "torch_lstm"


# ---------------------------------------------------------------- optimizers (torch.optim's names)

@dataclass
class SGDConfig:
    name: str = "sgd"
    lr: float = 0.001
    momentum: float = 0.0
    dampening: float = 0.0
    weight_decay: float = 0.0
    nesterov: bool = False
    maximize: bool = False


@dataclass
class AdamConfig:
    name: str = "adam"
    lr: float = 0.001
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    weight_decay: float = 0.0
    amsgrad: bool = False
    maximize: bool = False
    decoupled_weight_decay: bool = False


@dataclass
class AdagradConfig:
    name: str = "adagrad"
    lr: float = 0.01
    lr_decay: float = 0.0
    weight_decay: float = 0.0
    initial_accumulator_value: float = 0.0
    eps: float = 1e-10
    maximize: bool = False


@dataclass
class RMSpropConfig:
    name: str = "rmsprop"
    lr: float = 0.01
    alpha: float = 0.99
    eps: float = 1e-8
    weight_decay: float = 0.0
    momentum: float = 0.0
    centered: bool = False
    maximize: bool = False


# ---------------------------------------------------------------- run

@dataclass
class TrainConfig:
    epochs: int = 100
    checkpoint: bool = True  # save the trained weights (model.npz) in the run dir
    # a `word=` longer than this is refused: a guard against pasting a whole file on the command
    # line, where `word_file` is the way for long texts (it has no cap)
    max_word_length: int = 1000
    skip_done: bool = False  # a run dir that already holds metrics.json is not trained again


@dataclass
class ConvergeConfig:
    # converged from epoch e: the loss stays below this from e to the last epoch and the word is
    # spelled; 5e-5 is what the report prints as "0.0000"
    loss_below: float = 5e-5


@dataclass
class Config:
    word: Optional[str] = "edgement"
    word_file: Optional[str] = None  # read the text from this file instead (overrides `word`)
    seed: int = 0
    device: str = "cpu"  # auto | cpu | cuda
    dtype: str = "float64"  # float32 | float64
    model: Any = MISSING
    optimizer: Any = MISSING
    train: TrainConfig = field(default_factory=TrainConfig)
    converge: ConvergeConfig = field(default_factory=ConvergeConfig)


MODELS = {"numpy_rnn": NumpyRNNConfig, "torch_rnn": TorchRNNConfig, "torch_gru": TorchGRUConfig,
          "torch_lstm": TorchLSTMConfig}
# the torch models' recurrent cell: nn.RNN, nn.GRU or nn.LSTM, then nn.Linear
TORCH_CELLS = {"torch_rnn": "rnn", "torch_gru": "gru", "torch_lstm": "lstm"}
OPTIMIZERS = {"sgd": SGDConfig, "adam": AdamConfig, "adagrad": AdagradConfig,
              "rmsprop": RMSpropConfig}
NUMPY_OPTIMIZERS = ("sgd", "adagrad")
MODEL_COMMON = ("name", "hidden_size", "bias")  # every model has these; the rest are its own


def model_args(model: str) -> dict[str, Any]:
    """A model's own arguments and their defaults, as its schema above declares them."""
    return {f.name: f.default for f in fields(MODELS[model]) if f.name not in MODEL_COMMON}


def register_configs() -> None:
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=Config)
    for name, node in MODELS.items():
        cs.store(group="schema/model", name=name, node=node, package="model")
    for name, node in OPTIMIZERS.items():
        cs.store(group="schema/optimizer", name=name, node=node, package="optimizer")


# ---------------------------------------------------------------- checks

def _require(ok: bool, key: str, rule: str, value) -> None:
    require(ok, key, rule, value, ConfigError)


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def resolve_word(cfg: DictConfig) -> str:
    """The training text: `word_file`'s contents (one trailing newline dropped) or `word`."""
    if cfg.get("word_file"):
        path = Path(str(cfg.word_file))
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"word_file: cannot read {str(path)!r} ({e.__class__.__name__})") from None
        return text[:-1] if text.endswith("\n") else text
    return cfg.word


def validate(cfg) -> str:
    """Check every value a run depends on; return the training text."""
    cfg = plain(cfg)
    word = resolve_word(cfg)
    key = "word_file" if cfg.get("word_file") else "word"
    _require(isinstance(word, str), key, "must be a string", word)
    _require(len(word) >= 2, key, "needs at least two characters", word)
    _require(word.strip() != "", key, "must contain a non-whitespace character", word)
    if key == "word":
        limit = cfg.train.max_word_length
        _require(len(word) <= limit, key, f"is longer than train.max_word_length={limit} characters "
                 "(give long texts with word_file=PATH)", f"{len(word)} characters")

    _require(cfg.seed >= 0, "seed", "must be >= 0", cfg.seed)
    _require(cfg.device in ("auto", "cpu", "cuda"), "device", "must be auto, cpu or cuda", cfg.device)
    _require(cfg.dtype in ("float32", "float64"), "dtype", "must be float32 or float64", cfg.dtype)
    _require(cfg.train.epochs >= 1, "train.epochs", "must be >= 1", cfg.train.epochs)
    _require(_finite(cfg.converge.loss_below) and cfg.converge.loss_below > 0,
             "converge.loss_below", "must be a finite number > 0", cfg.converge.loss_below)

    m = cfg.model
    _require(m.name in MODELS, "model", f"must be one of {', '.join(MODELS)}", m.name)
    _require(m.hidden_size >= 1, "model.hidden_size", "must be >= 1", m.hidden_size)
    if m.name == "numpy_rnn":
        _require(m.init in ("randn", "uniform"), "model.init", "must be randn or uniform", m.init)
        _require(m.loss_reduction in ("sum", "mean"), "model.loss_reduction", "must be sum or mean",
                 m.loss_reduction)
        _require(m.clip is None or (_finite(m.clip) and m.clip > 0), "model.clip",
                 "must be a finite number > 0 or null", m.clip)
    else:
        _require(m.num_layers >= 1, "model.num_layers", "must be >= 1", m.num_layers)
        if "nonlinearity" in m:  # nn.RNN only: the gated cells fix their own
            _require(m.nonlinearity in ("tanh", "relu"), "model.nonlinearity",
                     "must be tanh or relu", m.nonlinearity)

    _validate_optimizer(cfg.optimizer, m.name)
    return word


def _validate_optimizer(o: DictConfig, model: str) -> None:
    _require(o.name in OPTIMIZERS, "optimizer", f"must be one of {', '.join(OPTIMIZERS)}", o.name)
    if model == "numpy_rnn":
        _require(o.name in NUMPY_OPTIMIZERS, "optimizer",
                 f"model numpy_rnn supports only {' and '.join(NUMPY_OPTIMIZERS)}", o.name)
    _require(_finite(o.lr) and o.lr > 0, "optimizer.lr", "must be a finite number > 0", o.lr)
    for key in ("weight_decay", "momentum", "dampening", "lr_decay", "initial_accumulator_value",
                "eps"):
        if key in o:
            _require(_finite(o[key]) and o[key] >= 0, f"optimizer.{key}",
                     "must be a finite number >= 0", o[key])
    if "alpha" in o:
        _require(_finite(o.alpha) and 0 <= o.alpha <= 1, "optimizer.alpha", "must be in [0, 1]",
                 o.alpha)
    if "betas" in o:
        betas = list(o.betas)
        _require(len(betas) == 2, "optimizer.betas", "must be a pair [beta1, beta2]", betas)
        _require(all(_finite(b) and 0 <= b < 1 for b in betas), "optimizer.betas",
                 "must both be in [0, 1)", betas)
    if o.get("nesterov"):
        _require(o.momentum > 0 and o.dampening == 0, "optimizer.nesterov",
                 "needs momentum > 0 and dampening = 0", True)


class Plain(dict):
    """A resolved config as plain dicts with attribute access: reading a value costs a dict
    lookup instead of a DictConfig node access, which matters when a batch holds thousands."""

    __slots__ = ()

    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None


def plain(cfg) -> Plain:
    """`cfg` (a DictConfig, a dict or a Plain) as a Plain tree."""
    if isinstance(cfg, Plain):
        return cfg
    if isinstance(cfg, DictConfig):
        cfg = OmegaConf.to_container(cfg, resolve=True)
    return Plain({k: plain(v) if isinstance(v, dict) else v for k, v in cfg.items()})


def optimizer_args(o) -> dict:
    """The torch.optim keyword arguments of an optimizer config (betas as a tuple)."""
    args = dict(OmegaConf.to_container(o, resolve=True) if isinstance(o, DictConfig) else o)
    args.pop("name")
    if "betas" in args:
        args["betas"] = tuple(args["betas"])
    return args
