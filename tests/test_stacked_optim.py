"""Stacked optimizers against torch.optim: every member of a mixed batch follows the trajectory that
torch.optim.<Optimizer> with the same arguments gives on that member's own parameter tensor."""
import inspect

import numpy as np
import pytest
import torch

from rnnexp.engine.stacked_optim import OPTIMIZERS, OptimizerConfigError, make_optimizer

TORCH = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adagrad": torch.optim.Adagrad,
         "rmsprop": torch.optim.RMSprop}
P, STEPS = 6, 25


def gradient(p: torch.Tensor, t: int) -> torch.Tensor:
    """A parameter-dependent gradient with a step-dependent push, the same for both sides."""
    phase = torch.arange(p.shape[0], dtype=p.dtype).view(-1, *([1] * (p.dim() - 1)))
    return torch.sin(3 * p + phase) + 0.3 * torch.cos(phase * (t + 1))


def run_stacked(name, hparams, flags, steps=STEPS, keep_at=None, keep_index=None):
    M = len(hparams)
    gen = torch.Generator().manual_seed(0)
    params = torch.randn(P, M, dtype=torch.float64, generator=gen)
    opt = make_optimizer(name, hparams, flags)
    for t in range(steps):
        if keep_at == t:
            params = params[:, keep_index].contiguous()
            opt.keep(torch.tensor(keep_index))
        opt.step(params, gradient(params, t))
    return params


def run_torch(name, hparams, flags, member, M, steps=STEPS):
    gen = torch.Generator().manual_seed(0)
    p = torch.randn(P, M, dtype=torch.float64, generator=gen)[:, member].clone().requires_grad_(True)
    kwargs = dict(hparams, **flags)
    if "betas" in kwargs:
        kwargs["betas"] = tuple(kwargs["betas"])
    opt = TORCH[name]([p], **kwargs)
    for t in range(steps):
        p.grad = gradient(p.detach(), t)
        opt.step()
    return p.detach()


CASES = [
    ("sgd", {}, [dict(lr=0.1), dict(lr=0.05, momentum=0.9), dict(lr=0.2, momentum=0.5, dampening=0.3),
                 dict(lr=0.1, weight_decay=0.1)]),
    ("sgd", {"nesterov": True}, [dict(lr=0.1, momentum=0.9), dict(lr=0.05, momentum=0.3, weight_decay=0.01)]),
    ("sgd", {"maximize": True}, [dict(lr=0.01, momentum=0.9), dict(lr=0.02)]),
    ("adam", {}, [dict(lr=0.01), dict(lr=0.1, betas=(0.8, 0.99), eps=1e-6), dict(lr=0.05, weight_decay=0.1)]),
    ("adam", {"amsgrad": True}, [dict(lr=0.01), dict(lr=0.1, betas=(0.5, 0.9), weight_decay=0.01)]),
    ("adam", {"decoupled_weight_decay": True}, [dict(lr=0.01, weight_decay=0.1), dict(lr=0.1, weight_decay=0.0)]),
    ("adam", {"maximize": True, "amsgrad": True, "decoupled_weight_decay": True},
     [dict(lr=0.01, weight_decay=0.05), dict(lr=0.03, betas=(0.9, 0.9))]),
    ("adagrad", {}, [dict(lr=0.1), dict(lr=0.3, lr_decay=0.05, eps=1e-18), dict(lr=0.1, weight_decay=0.1),
                     dict(lr=0.2, initial_accumulator_value=0.5)]),
    ("adagrad", {"maximize": True}, [dict(lr=0.1, lr_decay=0.01), dict(lr=0.05)]),
    ("rmsprop", {}, [dict(lr=0.01), dict(lr=0.1, alpha=0.5, eps=1e-18), dict(lr=0.05, momentum=0.9),
                     dict(lr=0.01, weight_decay=0.1, alpha=0.9)]),
    ("rmsprop", {"centered": True}, [dict(lr=0.01, momentum=0.5), dict(lr=0.05, alpha=0.9)]),
    ("rmsprop", {"maximize": True, "centered": True}, [dict(lr=0.01), dict(lr=0.02, momentum=0.3)]),
]


@pytest.mark.parametrize("name,flags,hparams", CASES, ids=[f"{c[0]}-{'-'.join(c[1]) or 'plain'}" for c in CASES])
def test_each_member_follows_torch_optim(name, flags, hparams):
    stacked = run_stacked(name, hparams, flags)
    for j, hp in enumerate(hparams):
        expected = run_torch(name, hp, flags, j, len(hparams))
        np.testing.assert_allclose(stacked[:, j].numpy(), expected.numpy(), rtol=1e-12, atol=1e-13)


def test_keep_drops_members_and_their_state():
    hparams = [dict(lr=0.01, momentum=0.5), dict(lr=0.05), dict(lr=0.02, alpha=0.9, momentum=0.9)]
    flags = {"centered": True}
    stacked = run_stacked("rmsprop", hparams, flags, keep_at=10, keep_index=[0, 2])
    for col, j in enumerate([0, 2]):
        expected = run_torch("rmsprop", hparams[j], flags, j, len(hparams))
        np.testing.assert_allclose(stacked[:, col].numpy(), expected.numpy(), rtol=1e-12, atol=1e-13)


def test_float32_members_follow_torch_optim():
    hparams = [dict(lr=0.01), dict(lr=0.05, betas=(0.8, 0.99))]
    gen = torch.Generator().manual_seed(0)
    start = torch.randn(P, 2, generator=gen)
    params, opt = start.clone(), make_optimizer("adam", hparams, dtype=torch.float32)
    singles = [start[:, j].clone().requires_grad_(True) for j in range(2)]
    torch_opts = [torch.optim.Adam([s], lr=hp["lr"], betas=hp.get("betas", (0.9, 0.999))) for s, hp in zip(singles, hparams)]
    for t in range(STEPS):
        opt.step(params, gradient(params, t))
        for s, o in zip(singles, torch_opts):
            s.grad = gradient(s.detach(), t)
            o.step()
    for j in range(2):
        np.testing.assert_allclose(params[:, j].numpy(), singles[j].detach().numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_defaults_and_flags_are_torchs(name):
    signature = inspect.signature(TORCH[name]).parameters
    cls = OPTIMIZERS[name]
    for key, hyper in cls.hypers.items():
        if key in ("beta1", "beta2"):
            assert hyper.default == signature["betas"].default[int(key[-1]) - 1]
        else:
            assert hyper.default == signature[key].default, key
    for flag in cls.flag_names:
        assert signature[flag].default is False


@pytest.mark.parametrize("name,hparams,flags,match", [
    ("sgd", [dict(lr=-1)], {}, "lr=-1.0 must be >= 0"),
    ("sgd", [dict(lr=0.1, momentm=0.9)], {}, "unknown hyperparameter 'momentm'"),
    ("sgd", [dict(lr=0.1, momentum=0.9), dict(lr=0.1)], {"nesterov": True}, "member 1 .*nesterov"),
    ("sgd", [dict(lr="fast")], {}, "lr='fast' must be a number"),
    ("adam", [dict(betas=(0.9, 1.0))], {}, r"betas\[1\]=1.0 must be in \[0, 1\)"),
    ("adam", [dict(betas=0.9)], {}, "betas=0.9 must be a pair"),
    ("adam", [dict(lr=0.1)], {"centered": True}, "adam: has no flag 'centered'"),
    ("rmsprop", [dict(lr=0.1)], {"fused": True}, "unknown flag 'fused'"),
    ("adagrad", [dict(initial_accumulator_value=-0.1)], {}, "initial_accumulator_value=-0.1"),
    ("lbfgs", [dict(lr=0.1)], {}, "unknown optimizer 'lbfgs'"),
])
def test_bad_arguments_name_the_key(name, hparams, flags, match):
    with pytest.raises(OptimizerConfigError, match=match):
        make_optimizer(name, hparams, flags)


def test_inapplicable_false_flags_are_ignored():
    opt = make_optimizer("sgd", [dict(lr=0.1)], {"amsgrad": False, "centered": False, "maximize": False})
    assert opt.flags == {"nesterov": False, "maximize": False}
