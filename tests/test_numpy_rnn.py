"""NumpyRNN: exact gradients (finite differences, torch autograd), the stacked core, init, generate."""
import numpy as np
import pytest
import torch

from greedy import numpy_greedy, torch_greedy
from rnnexp.generate import generate, layers_from
from rnnexp.gradcheck import GradientCheckError, assert_gradients_close, check_gradients
from rnnexp.models.numpy_rnn import (NumpyRNN, NumpyRNNError, init_stacked,
                                     stacked_loss_and_grads)
from rnnexp.models.torch_rnn import CharRNN

SIZES = [(2, 1, 1), (3, 2, 4), (5, 4, 7), (9, 6, 12)]  # (V, H, T)


def random_model(V, H, *, bias=True, reduction="sum", seed=0):
    """Weights and biases large enough for tanh to bend and gradients to clear round-off."""
    rng = np.random.default_rng(seed)
    model = NumpyRNN(V, H, bias=bias, init="uniform", seed=seed, loss_reduction=reduction)
    for p in model.params.values():
        p[...] = rng.normal(scale=0.6, size=p.shape)
    return model


def random_word(V, T, seed=0):
    rng = np.random.default_rng(seed + 100)
    return rng.integers(0, V, size=T), rng.integers(0, V, size=T)


# ------------------------------------------------------------------------------- finite differences

@pytest.mark.parametrize("V,H,T", SIZES)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_gradients_match_finite_differences(V, H, T, bias, reduction):
    model = random_model(V, H, bias=bias, reduction=reduction, seed=V + H + T)
    inputs, targets = random_word(V, T, seed=T)
    _, grads = model.loss_and_grads(inputs, targets)
    assert set(grads) == set(model.params) == (
        {"W_xh", "W_hh", "W_yh", "b_h", "b_y"} if bias else {"W_xh", "W_hh", "W_yh"})
    assert_gradients_close(lambda p: model.loss_and_grads(inputs, targets)[0], model.params, grads,
                           rtol=1e-6)


# ------------------------------------------------------------------------------- torch autograd

def torch_twin(model: NumpyRNN) -> CharRNN:
    """CharRNN in float64 with model's weights; b_h goes to bias_ih, bias_hh is zero."""
    p = model.params
    V, H = p["W_xh"].shape[1], p["W_xh"].shape[0]
    bias = "b_h" in p
    net = CharRNN(V, H, bias=bias).double()
    with torch.no_grad():
        net.rnn.weight_ih_l0.copy_(torch.from_numpy(p["W_xh"]))
        net.rnn.weight_hh_l0.copy_(torch.from_numpy(p["W_hh"]))
        net.fc.weight.copy_(torch.from_numpy(p["W_yh"]))
        if bias:
            net.rnn.bias_ih_l0.copy_(torch.from_numpy(p["b_h"]))
            net.rnn.bias_hh_l0.zero_()
            net.fc.bias.copy_(torch.from_numpy(p["b_y"]))
    return net


def torch_loss_and_grads(net: CharRNN, inputs, targets, reduction):
    net.zero_grad()
    logits = net(torch.from_numpy(inputs))
    loss = torch.nn.CrossEntropyLoss(reduction=reduction)(logits, torch.from_numpy(targets))
    loss.backward()
    grads = {"W_xh": net.rnn.weight_ih_l0.grad, "W_hh": net.rnn.weight_hh_l0.grad,
             "W_yh": net.fc.weight.grad}
    if net.fc.bias is not None:
        grads["b_h"], grads["b_y"] = net.rnn.bias_ih_l0.grad, net.fc.bias.grad
    return loss.item(), {k: g.numpy() for k, g in grads.items()}, logits.detach().numpy()


def assert_rel_close(actual, expected, rtol, name=""):
    scale = max(np.abs(expected).max(), 1e-300)
    err = np.abs(np.asarray(actual) - expected).max() / scale
    assert err <= rtol, f"{name}: relative error {err:.3g} > {rtol:g}"


@pytest.mark.parametrize("V,H,T", SIZES)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_loss_and_gradients_match_torch_autograd(V, H, T, bias, reduction):
    model = random_model(V, H, bias=bias, reduction=reduction, seed=3 * V + H)
    inputs, targets = random_word(V, T, seed=V)
    loss, grads = model.loss_and_grads(inputs, targets)
    t_loss, t_grads, _ = torch_loss_and_grads(torch_twin(model), inputs, targets, reduction)
    assert_rel_close(loss, t_loss, 1e-10, "loss")
    assert set(grads) == set(t_grads)
    for k in grads:
        assert_rel_close(grads[k], t_grads[k], 1e-10, k)


def test_predictions_are_the_argmax_of_torch_logits():
    model = random_model(6, 5, seed=4)
    inputs, targets = random_word(6, 9)
    _, _, logits = torch_loss_and_grads(torch_twin(model), inputs, targets, "mean")
    stacked = {k: v[None] for k, v in model.params.items()}
    _, _, predictions = stacked_loss_and_grads(stacked, inputs, targets)
    np.testing.assert_array_equal(predictions[0], logits.argmax(axis=1))


# ------------------------------------------------------------------------------- the `dc += dc` bug

def course_style_loss_and_grads(params, inputs, targets, output_bias_line):
    """An independent, loop-per-step implementation in the style of the course code (column
    vectors, summed loss), with the line that accumulates the output-bias gradient selectable."""
    W_xh, W_hh, W_yh, b, c = (params[k] for k in ("W_xh", "W_hh", "W_yh", "b_h", "b_y"))
    V, H = W_yh.shape
    b, c = b.reshape(H, 1), c.reshape(V, 1)
    xs, hs, ycap = {}, {-1: np.zeros((H, 1))}, {}
    loss = 0.0
    for t in range(len(inputs)):
        xs[t] = np.zeros((V, 1))
        xs[t][inputs[t]] = 1
        hs[t] = np.tanh(W_xh @ xs[t] + W_hh @ hs[t - 1] + b)
        o = W_yh @ hs[t] + c
        ycap[t] = np.exp(o - o.max()) / np.exp(o - o.max()).sum()
        loss -= np.log(ycap[t][targets[t], 0])
    dW_xh, dW_hh, dW_yh = np.zeros_like(W_xh), np.zeros_like(W_hh), np.zeros_like(W_yh)
    db, dc = np.zeros_like(b), np.zeros_like(c)
    dhnext = np.zeros((H, 1))
    for t in reversed(range(len(inputs))):
        d_yy_cap = ycap[t].copy()
        d_yy_cap[targets[t]] -= 1
        dW_yh += d_yy_cap @ hs[t].T
        if output_bias_line == "dc += dc":
            dc += dc  # the report's line: dc starts at zero and stays zero
        else:
            dc += d_yy_cap
        dL_dh_dtanh = (1 - hs[t] * hs[t]) * (W_yh.T @ d_yy_cap + dhnext)
        db += dL_dh_dtanh
        dW_hh += dL_dh_dtanh @ hs[t - 1].T
        dW_xh += dL_dh_dtanh @ xs[t].T
        dhnext = W_hh.T @ dL_dh_dtanh
    grads = {"W_xh": dW_xh, "W_hh": dW_hh, "W_yh": dW_yh, "b_h": db[:, 0], "b_y": dc[:, 0]}
    return loss, grads


def test_course_code_with_the_right_line_agrees_and_passes():
    model = random_model(6, 5, seed=7)
    inputs, targets = random_word(6, 8, seed=7)
    loss, grads = course_style_loss_and_grads(model.params, inputs, targets, "dc += d_yy_cap")
    ours_loss, ours = model.loss_and_grads(inputs, targets)
    assert_rel_close(loss, ours_loss, 1e-12, "loss")
    for k in ours:
        assert_rel_close(grads[k], ours[k], 1e-12, k)
    f = lambda p: course_style_loss_and_grads(p, inputs, targets, "dc += d_yy_cap")[0]
    assert_gradients_close(f, model.params, grads)


def test_course_code_with_dc_plus_dc_is_caught():
    model = random_model(6, 5, seed=7)
    inputs, targets = random_word(6, 8, seed=7)
    _, buggy = course_style_loss_and_grads(model.params, inputs, targets, "dc += dc")
    np.testing.assert_array_equal(buggy["b_y"], 0.0)  # the output bias would never learn
    f = lambda p: course_style_loss_and_grads(p, inputs, targets, "dc += dc")[0]
    errors = check_gradients(f, model.params, buggy)
    assert errors["b_y"] == pytest.approx(1.0)
    assert max(e for k, e in errors.items() if k != "b_y") < 1e-6  # only b_y is wrong
    with pytest.raises(GradientCheckError, match="b_y"):
        assert_gradients_close(f, model.params, buggy)
    _, t_grads, _ = torch_loss_and_grads(torch_twin(model), inputs, targets, "sum")
    assert np.abs(buggy["b_y"] - t_grads["b_y"]).max() > 1e-3  # and disagrees with autograd


# ------------------------------------------------------------------------------- the stacked core

@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_stacked_call_equals_separate_single_calls(bias, reduction):
    V, H, T = 7, 6, 9
    singles = [random_model(V, H, bias=bias, reduction=reduction, seed=s) for s in (1, 2, 3, 4)]
    inputs, targets = random_word(V, T)
    stacked = {k: np.stack([m.params[k] for m in singles]) for k in singles[0].params}
    loss, grads, predictions = stacked_loss_and_grads(stacked, inputs, targets, reduction)
    assert loss.shape == (4,) and predictions.shape == (4, T)
    for i, model in enumerate(singles):
        one_loss, one_grads = model.loss_and_grads(inputs, targets)
        np.testing.assert_allclose(loss[i], one_loss, rtol=1e-13)
        for k in one_grads:
            assert grads[k].shape == stacked[k].shape
            np.testing.assert_allclose(grads[k][i], one_grads[k], rtol=1e-12, atol=1e-15)


def test_single_model_updates_in_place_and_is_the_m1_case():
    model = random_model(4, 3)
    inputs, targets = random_word(4, 5)
    W = model.params["W_hh"]
    loss, grads = model.loss_and_grads(inputs, targets)
    for k in model.params:
        model.params[k] -= 0.1 * grads[k]
    assert model.params["W_hh"] is W
    assert model.loss_and_grads(inputs, targets)[0] < loss


# ------------------------------------------------------------------------------- init

def test_stacked_init_equals_single_inits():
    for init in ("randn", "uniform"):
        stacked = init_stacked(5, 4, [11, 22], init=init)
        for i, seed in enumerate((11, 22)):
            single = NumpyRNN(5, 4, init=init, seed=seed).params
            for k in single:
                np.testing.assert_array_equal(stacked[k][i], single[k])


def test_init_schemes():
    V, H = 7, 50
    randn = NumpyRNN(V, H, init="randn", seed=3).params
    rng = np.random.default_rng(3)
    np.testing.assert_array_equal(randn["W_xh"], rng.standard_normal((H, V)) * 0.01)
    np.testing.assert_array_equal(randn["W_hh"], rng.standard_normal((H, H)) * 0.01)
    np.testing.assert_array_equal(randn["b_h"], np.zeros(H))
    np.testing.assert_array_equal(randn["b_y"], np.zeros(V))
    uniform = NumpyRNN(V, H, init="uniform", seed=3).params
    assert np.abs(uniform["W_xh"]).max() <= np.sqrt(1 / V)
    assert np.abs(uniform["W_hh"]).max() <= np.sqrt(1 / H)
    assert np.abs(uniform["W_yh"]).max() <= np.sqrt(1 / H)
    assert np.abs(uniform["W_xh"]).max() > 0.8 * np.sqrt(1 / V)
    shapes = {k: v.shape for k, v in uniform.items()}
    assert shapes == {"W_xh": (H, V), "W_hh": (H, H), "W_yh": (V, H), "b_h": (H,), "b_y": (V,)}
    assert set(NumpyRNN(V, H, bias=False).params) == {"W_xh", "W_hh", "W_yh"}


def test_float32_runs_close_to_float64():
    inputs, targets = random_word(5, 6)
    m64 = NumpyRNN(5, 8, init="uniform", seed=2)
    m32 = NumpyRNN(5, 8, init="uniform", seed=2, dtype=np.float32)
    assert all(p.dtype == np.float32 for p in m32.params.values())
    l64, g64 = m64.loss_and_grads(inputs, targets)
    l32, g32 = m32.loss_and_grads(inputs, targets)
    assert all(g.dtype == np.float32 for g in g32.values())
    assert l32 == pytest.approx(l64, rel=1e-5)
    for k in g64:
        np.testing.assert_allclose(g32[k], g64[k], rtol=1e-3, atol=1e-6)


# ------------------------------------------------------------------------------- generate, from_params

@pytest.mark.parametrize("bias", [True, False])
def test_generation_matches_full_prefix_reruns_in_numpy_and_torch(bias):
    model = random_model(6, 5, bias=bias, seed=9)
    net = torch_twin(model)
    for start in ([0], [3, 1], [2, 2, 5]):
        assert numpy_greedy(model, start, 10) == torch_greedy(net, start, 10) \
            == generate(layers_from(model.params), start, 10)
    assert generate(layers_from(model.params), [4, 1, 2], 2) == [4, 1, 2]


def test_from_params_copies_and_round_trips():
    model = random_model(4, 3, seed=5)
    inputs, targets = random_word(4, 5)
    twin = NumpyRNN.from_params(model.params, loss_reduction="mean")
    assert twin.params["W_hh"] is not model.params["W_hh"]
    loss, _ = twin.loss_and_grads(inputs, targets)
    assert loss == pytest.approx(model.loss_and_grads(inputs, targets)[0] / 5, rel=1e-14)
    no_bias = {k: v for k, v in model.params.items() if not k.startswith("b_")}
    assert set(NumpyRNN.from_params(no_bias).params) == set(no_bias)


def test_bad_input_is_named():
    with pytest.raises(NumpyRNNError, match="init.*'xavier'"):
        NumpyRNN(3, 2, init="xavier")
    with pytest.raises(NumpyRNNError, match="loss_reduction.*'avg'"):
        NumpyRNN(3, 2, loss_reduction="avg")
    with pytest.raises(NumpyRNNError, match="hidden_size.*0"):
        NumpyRNN(3, 0)
    model = NumpyRNN(3, 2)
    with pytest.raises(NumpyRNNError, match=r"targets has an id outside \[0, 3\)"):
        model.loss_and_grads([0, 1], [1, 3])
    with pytest.raises(NumpyRNNError, match="differ in length"):
        model.loss_and_grads([0, 1], [1])
    with pytest.raises(NumpyRNNError, match="b_h"):
        NumpyRNN.from_params({k: v for k, v in model.params.items() if k != "b_y"})
    with pytest.raises(NumpyRNNError, match="unknown.*'c'"):
        NumpyRNN.from_params(dict(model.params, c=np.zeros(3)))


def test_from_params_checks_shapes():
    params = NumpyRNN(3, 2).params
    with pytest.raises(NumpyRNNError, match=r"W_yh must have shape \(3, 2\)"):
        NumpyRNN.from_params(dict(params, W_yh=np.zeros((2, 3))))
