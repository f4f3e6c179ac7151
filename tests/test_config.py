"""Every config composes; every bad value is refused with a message that names its key."""
import itertools
import math

import pytest

from rnnexp.config import ConfigError, OPTIMIZERS, validate

TORCH_OPTIMIZERS = list(OPTIMIZERS)


@pytest.mark.parametrize("model,optimizer", list(itertools.product(["torch_rnn", "numpy_rnn"], TORCH_OPTIMIZERS)))
def test_every_config_file_composes(make_cfg, model, optimizer):
    cfg = make_cfg(f"model={model}", f"optimizer={optimizer}")
    assert cfg.model.name == model and cfg.optimizer.name == optimizer
    if model == "numpy_rnn" and optimizer not in ("sgd", "adagrad"):
        with pytest.raises(ConfigError, match="^optimizer: model numpy_rnn supports only sgd and adagrad"):
            validate(cfg)
    else:
        assert validate(cfg) == "edgement"


def test_optimizer_configs_expose_torch_arguments(make_cfg):
    import inspect

    import torch

    skip = {"self", "params", "foreach", "differentiable", "fused", "capturable"}
    for name, cls in [("sgd", torch.optim.SGD), ("adam", torch.optim.Adam),
                      ("adagrad", torch.optim.Adagrad), ("rmsprop", torch.optim.RMSprop)]:
        torch_args = set(inspect.signature(cls.__init__).parameters) - skip
        ours = set(make_cfg(f"optimizer={name}").optimizer) - {"name"}
        assert ours == torch_args, name


BAD = [
    (["word=''"], "word: needs at least two characters"),
    (["word=a"], "word: needs at least two characters"),
    (["word='  '"], "word: must contain a non-whitespace character"),
    (["model.hidden_size=0"], "model.hidden_size: must be >= 1"),
    (["optimizer.lr=0"], "optimizer.lr: must be a finite number > 0"),
    (["optimizer.lr=-0.1"], "optimizer.lr: must be a finite number > 0"),
    (["optimizer.lr=inf"], "optimizer.lr: must be a finite number > 0"),
    (["optimizer.lr=nan"], "optimizer.lr: must be a finite number > 0"),
    (["train.epochs=0"], "train.epochs: must be >= 1"),
    (["optimizer.eps=-1e-8"], "optimizer.eps: must be a finite number >= 0"),
    (["optimizer.alpha=1.5"], r"optimizer.alpha: must be in \[0, 1\]"),
    (["optimizer=adam", "optimizer.betas=[0.9,1.0]"], r"optimizer.betas: must both be in \[0, 1\)"),
    (["optimizer=adam", "optimizer.betas=[-0.1,0.9]"], r"optimizer.betas: must both be in \[0, 1\)"),
    (["model=numpy_rnn", "optimizer=rmsprop"], "optimizer: model numpy_rnn supports only"),
    (["optimizer=sgd", "optimizer.nesterov=true"], "optimizer.nesterov: needs momentum > 0"),
    (["dtype=float16"], "dtype: must be float32 or float64"),
    (["model=numpy_rnn", "optimizer=sgd", "model.init=zeros"], "model.init: must be randn or uniform"),
]


@pytest.mark.parametrize("overrides,message", BAD, ids=[" ".join(o) for o, _ in BAD])
def test_bad_values_name_their_key(make_cfg, overrides, message):
    with pytest.raises(ConfigError, match=f"^{message}") as info:
        validate(make_cfg(*overrides))
    assert "\n" not in str(info.value)


def test_word_file_is_read(make_cfg, tmp_path):
    path = tmp_path / "text.txt"
    path.write_text("naïve café\n", encoding="utf-8")
    assert validate(make_cfg(f"word_file={path}")) == "naïve café"
    with pytest.raises(ConfigError, match="^word_file: cannot read"):
        validate(make_cfg(f"word_file={tmp_path / 'missing.txt'}"))


def test_too_long_word_is_refused(make_cfg, tmp_path):
    path = tmp_path / "long.txt"
    path.write_text("ab" * 5000)
    with pytest.raises(ConfigError, match="^word_file: is longer than train.max_word_length=1000"):
        validate(make_cfg(f"word_file={path}"))
    assert len(validate(make_cfg(f"word_file={path}", "train.max_word_length=10000"))) == 10000
