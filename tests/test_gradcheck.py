"""The gradient checker passes correct gradients and catches wrong ones."""
import numpy as np
import pytest

from rnnexp.gradcheck import (GradientCheckError, assert_gradients_close, check_gradients,
                              numerical_gradient, relative_error)
from rnnexp.models.numpy_rnn import NumpyRNN


def quadratic_problem():
    """f = sum(a * x^2) + sum(sin(y)) with grads 2 a x and cos(y)."""
    rng = np.random.default_rng(0)
    a = rng.uniform(0.5, 2.0, size=(3, 4))
    params = {"x": rng.normal(size=(3, 4)), "y": rng.normal(size=5)}

    def f(p):
        return float(np.sum(a * p["x"] ** 2) + np.sum(np.sin(p["y"])))

    grads = {"x": 2 * a * params["x"], "y": np.cos(params["y"])}
    return f, params, grads


def rnn_problem(seed=0):
    rng = np.random.default_rng(seed)
    model = NumpyRNN(5, 4, init="uniform", seed=seed)
    model.params["b_h"][:] = rng.normal(scale=0.3, size=4)
    model.params["b_y"][:] = rng.normal(scale=0.3, size=5)
    inputs, targets = rng.integers(0, 5, size=6), rng.integers(0, 5, size=6)
    _, grads = model.loss_and_grads(inputs, targets)
    return (lambda p: model.loss_and_grads(inputs, targets)[0]), model.params, grads


def test_correct_gradients_pass():
    f, params, grads = quadratic_problem()
    errors = assert_gradients_close(f, params, grads, rtol=1e-8)
    assert set(errors) == {"x", "y"}


def test_params_are_restored():
    f, params, grads = quadratic_problem()
    before = {k: v.copy() for k, v in params.items()}
    check_gradients(f, params, grads)
    for k in params:
        np.testing.assert_array_equal(params[k], before[k])


def test_perturbed_gradient_is_caught():
    f, params, grads = rnn_problem()
    wrong = {k: g.copy() for k, g in grads.items()}
    wrong["W_hh"][1, 2] += 1e-3 * np.abs(grads["W_hh"]).max()
    errors = check_gradients(f, params, wrong)
    assert errors["W_hh"] > 1e-4
    with pytest.raises(GradientCheckError, match="W_hh"):
        assert_gradients_close(f, params, wrong, rtol=1e-6)


def test_output_bias_gradient_left_at_zero_is_caught():
    """What `dc += dc` produces: the output-bias gradient never leaves zero."""
    f, params, grads = rnn_problem()
    wrong = dict(grads, b_y=np.zeros_like(grads["b_y"]))
    with pytest.raises(GradientCheckError, match=r"b_y: 1\b"):
        assert_gradients_close(f, params, wrong)
    assert_gradients_close(f, params, grads)  # the right one passes


def test_numerical_gradient_of_a_constant_is_zero():
    params = {"x": np.ones(3)}
    np.testing.assert_array_equal(numerical_gradient(lambda p: 1.0, params, "x"), np.zeros(3))
    assert relative_error(np.zeros(3), np.zeros(3)) == 0.0


def test_bad_arguments_are_named():
    f, params, grads = quadratic_problem()
    with pytest.raises(ValueError, match="'y'"):
        check_gradients(f, params, {"x": grads["x"]})
    with pytest.raises(ValueError, match="floating"):
        numerical_gradient(lambda p: 0.0, {"n": np.arange(3)}, "n")
