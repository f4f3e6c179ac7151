"""Every config composes and exposes torch.optim's arguments; word files and long words.
(Every bad value and its one-line message: tests/reliability/test_bad_inputs.py.)"""
import itertools
import math

import pytest

from rnnexp.config import ConfigError, OPTIMIZERS, validate

TORCH_OPTIMIZERS = list(OPTIMIZERS)


@pytest.mark.parametrize("model,optimizer", list(itertools.product(
    ["torch_rnn", "torch_gru", "torch_lstm", "numpy_rnn"], TORCH_OPTIMIZERS)))
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


# Bad values: every one is checked in process, with the line rnnexp-train prints for it, by
# tests/reliability/test_bad_inputs.py (TRAIN_CASES), one per kind of message also through the CLI.


def test_word_file_is_read(make_cfg, tmp_path):
    path = tmp_path / "text.txt"
    path.write_text("naïve café\n", encoding="utf-8")
    assert validate(make_cfg(f"word_file={path}")) == "naïve café"
    with pytest.raises(ConfigError, match="^word_file: cannot read"):
        validate(make_cfg(f"word_file={tmp_path / 'missing.txt'}"))


def test_a_long_word_on_the_command_line_is_refused_but_a_long_word_file_trains(make_cfg, tmp_path):
    with pytest.raises(ConfigError, match="^word: is longer than train.max_word_length=1000 "
                                          r"characters \(give long texts with word_file=PATH\)"):
        validate(make_cfg("word=" + "ab" * 600))
    assert len(validate(make_cfg("word=" + "ab" * 600, "train.max_word_length=2000"))) == 1200
    path = tmp_path / "long.txt"
    path.write_text("The quick brown fox jumps over the lazy dog. " * 70)  # 3150 characters
    assert len(validate(make_cfg(f"word_file={path}"))) == 3150


def test_a_3000_character_word_file_trains(make_cfg, tmp_path):
    from rnnexp.train import train

    path = tmp_path / "long.txt"
    path.write_text("The quick brown fox jumps over the lazy dog. " * 70)
    result = train(make_cfg(f"word_file={path}", "model.hidden_size=8", "train.epochs=2",
                            "optimizer.lr=0.01"))
    assert result.metrics["epochs_run"] == 2 and len(result.metrics["word"]) == 3150
