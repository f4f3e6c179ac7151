"""The NumPy optimizers against torch.optim, and NumpyEngine against single NumpyRNN runs."""
import inspect

import numpy as np
import pytest
import torch

from greedy import numpy_greedy
from rnnexp.data import make_example
from rnnexp.engine import GroupSpec, MemberSpec
from rnnexp.engine.numpy_engine import (Adagrad, NumpyEngine, NumpyEngineError, SGD,
                                        make_optimizer)
from rnnexp.models.numpy_rnn import NumpyRNN

SHAPES = {"W": (3, 4), "b": (4,)}  # one member's params


# ------------------------------------------------------------------------------- optimizers

def run_against_torch(numpy_cls, torch_cls, hparams, flags, steps=6):
    """Members m = 0..M-1 with hparams[k][m]: one stacked NumPy optimizer vs M torch optimizers,
    fed the same random gradients; returns the largest relative parameter difference seen."""
    M = len(next(iter(hparams.values())))
    rng = np.random.default_rng(0)
    params = {k: rng.normal(size=(M,) + s) for k, s in SHAPES.items()}
    twins = [{k: torch.tensor(v[m], requires_grad=True) for k, v in params.items()} for m in range(M)]
    opt = numpy_cls(**{k: np.array(v) for k, v in hparams.items()}, **flags)
    torch_opts = [torch_cls(list(t.values()), **{k: float(v[m]) for k, v in hparams.items()}, **flags)
                  for m, t in enumerate(twins)]
    worst = 0.0
    for _ in range(steps):
        grads = {k: rng.normal(size=v.shape) for k, v in params.items()}
        opt.step(params, grads)
        for m, (t, t_opt) in enumerate(zip(twins, torch_opts)):
            for k, p in t.items():
                p.grad = torch.from_numpy(grads[k][m].copy())
            t_opt.step()
            for k, p in t.items():
                expected = p.detach().numpy()
                worst = max(worst, np.abs(params[k][m] - expected).max() / np.abs(expected).max())
    return worst


@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("maximize", [False, True])
def test_sgd_matches_torch_with_mixed_members(nesterov, maximize):
    hparams = {"lr": [0.1, 0.01, 0.3, 0.05], "momentum": [0.9, 0.5, 0.0, 0.99],
               "dampening": [0.0, 0.0, 0.0, 0.0] if nesterov else [0.0, 0.3, 0.5, 0.1],
               "weight_decay": [0.0, 0.01, 0.1, 0.0]}
    if nesterov:
        hparams["momentum"][2] = 0.7  # torch requires momentum > 0 with nesterov
    worst = run_against_torch(SGD, torch.optim.SGD, hparams,
                              {"nesterov": nesterov, "maximize": maximize})
    assert worst <= 1e-12


def test_sgd_plain_matches_torch():
    assert run_against_torch(SGD, torch.optim.SGD, {"lr": [0.1, 0.2]}, {}) <= 1e-12


@pytest.mark.parametrize("maximize", [False, True])
def test_adagrad_matches_torch_with_mixed_members(maximize):
    hparams = {"lr": [0.1, 0.01, 0.5], "lr_decay": [0.0, 0.1, 0.01],
               "weight_decay": [0.0, 0.05, 0.0], "initial_accumulator_value": [0.0, 0.1, 1.0],
               "eps": [1e-10, 1e-18, 1e-3]}
    worst = run_against_torch(Adagrad, torch.optim.Adagrad, hparams, {"maximize": maximize})
    assert worst <= 1e-12


@pytest.mark.parametrize("numpy_cls,torch_cls", [(SGD, torch.optim.SGD),
                                                 (Adagrad, torch.optim.Adagrad)])
def test_defaults_and_argument_names_are_torchs(numpy_cls, torch_cls):
    ours = inspect.signature(numpy_cls).parameters
    theirs = inspect.signature(torch_cls).parameters
    for name in numpy_cls.numeric + numpy_cls.flags:
        assert ours[name].default == theirs[name].default, name


def test_optimizer_keep_drops_member_state():
    params = {"W": np.zeros((3, 2))}
    opt = SGD(lr=np.array([1.0, 2.0, 3.0]), momentum=np.array([0.9, 0.9, 0.9]))
    opt.step(params, {"W": np.ones((3, 2))})
    opt.keep(np.array([True, False, True]))
    params = {"W": params["W"][[0, 2]]}
    opt.step(params, {"W": np.ones((2, 2))})
    np.testing.assert_allclose(params["W"][:, 0], [-1 - 1.9, -3 - 3 * 1.9])


def test_optimizer_arguments_are_checked():
    with pytest.raises(NumpyEngineError, match="only sgd and adagrad.*'adam'"):
        make_optimizer("adam", [{"lr": 0.1}], {})
    with pytest.raises(NumpyEngineError, match="no numeric argument 'betas'"):
        make_optimizer("sgd", [{"lr": 0.1, "betas": (0.9, 0.99)}], {})
    with pytest.raises(NumpyEngineError, match="no flag 'amsgrad'"):
        make_optimizer("adagrad", [{}], {"amsgrad": True})
    make_optimizer("adagrad", [{}], {"amsgrad": False, "maximize": False})
    with pytest.raises(NumpyEngineError, match="lr must be >= 0, got -0.1 \\(member 1\\)"):
        make_optimizer("sgd", [{"lr": 0.1}, {"lr": -0.1}], {})
    with pytest.raises(NumpyEngineError, match="eps must be a number, got '1e-8'"):
        make_optimizer("adagrad", [{"eps": "1e-8"}], {})
    with pytest.raises(NumpyEngineError, match="nesterov requires momentum > 0"):
        make_optimizer("sgd", [{"lr": 0.1, "momentum": 0.9}, {"lr": 0.1}], {"nesterov": True})


# ------------------------------------------------------------------------------- the engine

WORD = make_example("hello")


def group(*, word=WORD, hidden=6, bias=True, init="randn", reduction="sum", clip=None,
          dtype="float64"):
    return GroupSpec(model="numpy_rnn", vocab_size=len(word.vocab), inputs=tuple(word.inputs),
                     targets=tuple(word.targets), hidden_size=hidden, bias=bias,
                     model_args=(("init", init), ("loss_reduction", reduction), ("clip", clip)),
                     dtype=dtype)


def history(engine, epochs):
    return np.array([engine.step()[0] for _ in range(epochs)])  # (epochs, A)


@pytest.mark.parametrize("optimizer,hparams", [
    ("sgd", [{"lr": 0.5, "momentum": 0.9}, {"lr": 0.05}, {"lr": 0.2, "weight_decay": 0.01}]),
    ("adagrad", [{"lr": 0.3, "eps": 1e-18}, {"lr": 0.05}, {"lr": 0.1, "lr_decay": 0.01}]),
])
@pytest.mark.parametrize("bias", [True, False])
def test_mixed_batch_members_follow_their_single_runs(optimizer, hparams, bias):
    members = [MemberSpec(seed=s, hparams=h, optimizer=optimizer) for s, h in zip((1, 2, 3), hparams)]
    spec = group(bias=bias, init="uniform", clip=5.0)
    batch = history(NumpyEngine(spec, members), 25)
    for i, member in enumerate(members):
        alone = history(NumpyEngine(spec, [member]), 25)[:, 0]
        np.testing.assert_allclose(batch[:, i], alone, rtol=1e-12, atol=0)


def test_engine_is_the_numpy_rnn_training_loop():
    """Initial params, losses and spelled flags equal a hand-written NumpyRNN loop with clip + SGD."""
    spec = group(init="uniform", reduction="mean", clip=0.05, hidden=5)
    engine = NumpyEngine(spec, [MemberSpec(seed=4, hparams={"lr": 2.0})])
    model = NumpyRNN(len(WORD.vocab), 5, init="uniform", seed=4, loss_reduction="mean")
    for k, v in engine.export(0).items():
        np.testing.assert_array_equal(v, model.params[k])
    clipped_somewhere = False
    for _ in range(60):
        loss, spelled = engine.step()
        expected, grads = model.loss_and_grads(WORD.inputs, WORD.targets)
        greedy = numpy_greedy(model, WORD.inputs[:1], len(WORD.inputs) + 1)
        assert loss[0] == pytest.approx(expected, rel=1e-13)
        assert spelled[0] == (greedy == list(WORD.inputs) + [WORD.targets[-1]])
        clipped_somewhere |= any(np.abs(g).max() > 0.05 for g in grads.values())
        for k, g in grads.items():
            model.params[k] -= 2.0 * np.clip(g, -0.05, 0.05)
    assert clipped_somewhere
    for k, v in engine.export(0).items():
        np.testing.assert_allclose(v, model.params[k], rtol=1e-12, atol=1e-15)


def test_clip_changes_training_only_when_gradients_exceed_it():
    members = [MemberSpec(seed=0, hparams={"lr": 0.5})]
    free = history(NumpyEngine(group(init="uniform"), members), 5)
    loose = history(NumpyEngine(group(init="uniform", clip=1e6), members), 5)
    tight = history(NumpyEngine(group(init="uniform", clip=1e-3), members), 5)
    np.testing.assert_array_equal(free, loose)
    assert not np.allclose(free[1:], tight[1:])


def test_keep_drops_members_and_keeps_order():
    members = [MemberSpec(seed=s, hparams={"lr": lr}, optimizer="adagrad")
               for s, lr in ((1, 0.1), (2, 0.5), (3, 0.3))]
    engine = NumpyEngine(group(), members)
    history(engine, 3)
    engine.keep(np.array([True, False, True]))
    kept = history(engine, 4)
    assert kept.shape == (4, 2)
    for col, i in enumerate((0, 2)):
        alone = history(NumpyEngine(group(), [members[i]]), 7)[3:, 0]
        np.testing.assert_allclose(kept[:, col], alone, rtol=1e-12, atol=0)
    with pytest.raises(NumpyEngineError, match=r"bool mask of shape \(2,\)"):
        engine.keep(np.array([True, False, True]))


def test_spelled_turns_true_and_export_generates_the_word():
    word = make_example("edgement")
    spec = group(word=word, hidden=10, init="uniform")
    engine = NumpyEngine(spec, [MemberSpec(seed=0, hparams={"lr": 0.3}, optimizer="adagrad")])
    for epoch in range(300):
        loss, spelled = engine.step()
        if spelled[0]:
            break
    assert spelled[0] and loss.dtype == np.float64 and spelled.dtype == bool
    exported = engine.export(0)
    assert set(exported) == {"W_xh", "W_hh", "W_yh", "b_h", "b_y"}
    assert all(v.dtype == np.float64 for v in exported.values())
    # spelled was measured before the last update; the word is spelled by those params, and
    # almost surely still after one more small step
    model = NumpyRNN.from_params(exported)
    assert word.vocab.decode(numpy_greedy(model, word.inputs[:1], len(word.word))) == "edgement"


def test_float32_engine_tracks_float64():
    members = [MemberSpec(seed=1, hparams={"lr": 0.1}, optimizer="adagrad")]
    h64 = history(NumpyEngine(group(init="uniform"), members), 10)
    engine32 = NumpyEngine(group(init="uniform", dtype="float32"), members)
    assert engine32.params["W_hh"].dtype == np.float32
    h32 = history(engine32, 10)
    assert h32.dtype == np.float64
    np.testing.assert_allclose(h32, h64, rtol=1e-4)
    assert engine32.export(0)["W_hh"].dtype == np.float64


def test_bad_groups_are_refused_with_a_clear_message():
    member = [MemberSpec(seed=0, hparams={"lr": 0.1})]
    with pytest.raises(NumpyEngineError, match="only sgd and adagrad.*'rmsprop'"):
        NumpyEngine(group(), [MemberSpec(seed=0, hparams={"lr": 0.1}, optimizer="rmsprop")])
    with pytest.raises(NumpyEngineError, match="clip must be a positive number.*-1"):
        NumpyEngine(group(clip=-1), member)
    with pytest.raises(ValueError, match="init.*'zeros'"):
        NumpyEngine(group(init="zeros"), member)
    bad_arg = GroupSpec(**{**group().__dict__, "model_args": (("num_layers", 2),)})
    with pytest.raises(NumpyEngineError, match="no model argument 'num_layers'"):
        NumpyEngine(bad_arg, member)
    with pytest.raises(NumpyEngineError, match="'torch_rnn'"):
        NumpyEngine(GroupSpec(**{**group().__dict__, "model": "torch_rnn"}), member)
    with pytest.raises(NumpyEngineError, match="dtype.*'float16'"):
        NumpyEngine(group(dtype="float16"), member)


def test_a_diverging_member_leaves_the_others_alone():
    members = [MemberSpec(seed=0, hparams={"lr": 1e308}), MemberSpec(seed=1, hparams={"lr": 0.1})]
    spec = group(init="uniform")
    batch = history(NumpyEngine(spec, members), 6)
    assert not np.isfinite(batch[-1, 0])
    alone = history(NumpyEngine(spec, members[1:]), 6)[:, 0]
    np.testing.assert_allclose(batch[:, 1], alone, rtol=1e-12, atol=0)


def test_one_batch_mixes_sgd_and_adagrad():
    """SGD (with and without nesterov) and Adagrad members interleaved in one batch, then some
    leave: each still follows its single run."""
    specs = [("sgd", {"lr": 0.3, "momentum": 0.9}, (("nesterov", True),)), ("adagrad", {"lr": 0.3}, ()),
             ("sgd", {"lr": 0.2}, ()), ("adagrad", {"lr": 0.1, "lr_decay": 0.01}, ()),
             ("sgd", {"lr": 0.1, "momentum": 0.5}, (("nesterov", True),)), ("sgd", {"lr": 0.05}, ())]
    members = [MemberSpec(seed=s, hparams=h, optimizer=o, flags=f) for s, (o, h, f) in enumerate(specs)]
    spec = group(init="uniform")
    engine = NumpyEngine(spec, members)
    first = history(engine, 4)
    mask = np.array([True, True, False, True, False, True])
    engine.keep(mask)
    rest = history(engine, 6)
    for col, i in enumerate(np.flatnonzero(mask)):
        alone = history(NumpyEngine(spec, [members[i]]), 10)[:, 0]
        np.testing.assert_allclose(np.r_[first[:, i], rest[:, col]], alone, rtol=1e-12, atol=0)


def test_keeping_no_member_leaves_an_empty_batch():
    engine = NumpyEngine(group(), [MemberSpec(seed=0, hparams={"lr": 0.1})])
    engine.keep(np.array([False]))
    loss, spelled = engine.step()
    assert loss.shape == spelled.shape == (0,)


def test_the_engine_keeps_large_temporaries_in_the_heap_on_glibc():
    """glibc's mallopt takes the engine's thresholds (once per process; a second call returns the
    first answer); elsewhere the call does nothing and says so."""
    import platform
    import sys

    from rnnexp.engine._malloc import keep_large_blocks

    took = keep_large_blocks()
    assert keep_large_blocks() is took
    if sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc":
        assert took is True
