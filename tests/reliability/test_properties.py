"""Property-based checks of the data encoding and of config validation."""
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from rnnexp.config import ConfigError, validate
from rnnexp.data import DataError, make_example

texts = st.text(min_size=2, max_size=60)


@given(texts)
def test_encoding_round_trips_and_shifts_by_one(text):
    ex = make_example(text)
    assert list(ex.vocab.chars) == sorted(set(text))
    assert ex.vocab.decode(ex.inputs) == text[:-1]
    assert ex.vocab.decode(ex.targets) == text[1:]
    assert len(ex.inputs) == len(ex.targets) == len(text) - 1
    x = np.eye(len(ex.vocab))[ex.inputs]  # (T, V) one-hot
    assert x.shape == (len(text) - 1, len(ex.vocab))
    assert np.all(x.sum(axis=1) == 1) and np.array_equal(x.argmax(axis=1), ex.inputs)


@given(st.text(max_size=1))
def test_words_shorter_than_two_characters_are_refused(text):
    with pytest.raises(DataError):
        make_example(text)


@given(texts, st.text(min_size=1, max_size=5))
def test_characters_outside_the_vocabulary_are_named(text, other):
    vocab = make_example(text).vocab
    missing = [c for c in other if c not in vocab.chars]
    if missing:
        with pytest.raises(DataError, match="is not in the vocabulary"):
            vocab.encode(other)
    else:
        assert vocab.decode(vocab.encode(other)) == other


floats = st.floats(allow_nan=True, allow_infinity=True, width=64)


@pytest.fixture(scope="module")
def base(request):
    from hydra import compose, initialize_config_dir

    from conftest import CONF
    from rnnexp.config import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return {name: compose(config_name="config", overrides=[f"optimizer={name}"])
                for name in ("sgd", "adam", "adagrad", "rmsprop")}


def _with(cfg, **values):
    cfg = OmegaConf.create(OmegaConf.to_container(cfg))
    for key, value in values.items():
        OmegaConf.update(cfg, key, value)
    return cfg


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=60)
@given(lr=floats, alpha=floats)
def test_rmsprop_values_accepted_exactly_when_meaningful(base, lr, alpha):
    ok = math.isfinite(lr) and lr > 0 and math.isfinite(alpha) and 0 <= alpha <= 1
    cfg = _with(base["rmsprop"], **{"optimizer.lr": lr, "optimizer.alpha": alpha})
    if ok:
        assert validate(cfg) == "edgement"
    else:
        with pytest.raises(ConfigError, match=r"^optimizer\.(lr|alpha): "):
            validate(cfg)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=60)
@given(b1=floats, b2=floats, eps=floats)
def test_adam_values_accepted_exactly_when_meaningful(base, b1, b2, eps):
    ok = all(math.isfinite(b) and 0 <= b < 1 for b in (b1, b2)) and math.isfinite(eps) and eps >= 0
    cfg = _with(base["adam"], **{"optimizer.betas": [b1, b2], "optimizer.eps": eps})
    if ok:
        validate(cfg)
    else:
        with pytest.raises(ConfigError, match=r"^optimizer\.(betas|eps): "):
            validate(cfg)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=40)
@given(hidden=st.integers(-5, 5), epochs=st.integers(-5, 5))
def test_sizes_accepted_exactly_when_positive(base, hidden, epochs):
    cfg = _with(base["sgd"], **{"model.hidden_size": hidden, "train.epochs": epochs})
    if hidden >= 1 and epochs >= 1:
        validate(cfg)
    else:
        with pytest.raises(ConfigError, match=r"^(model\.hidden_size|train\.epochs): "):
            validate(cfg)
