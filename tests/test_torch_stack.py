"""The stacked torch engine against the single model: every member of a batch must reproduce, epoch
by epoch, what build(...) + torch.optim + nn.CrossEntropyLoss give for its own configuration, for
every cell (nn.RNN, nn.GRU, nn.LSTM)."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from rnnexp.data import make_example
from rnnexp.engine import GroupSpec, MemberSpec
from rnnexp.engine.stacked_optim import OptimizerConfigError
from rnnexp.engine import torch_stack
from rnnexp.engine.torch_stack import StackConfigError, StackedCharRNN, TorchStackEngine, flat_views
from rnnexp.config import TORCH_CELLS
from rnnexp.models.torch_rnn import DTYPES, build

EXAMPLE = make_example("edgement")
TORCH_OPTIM = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adagrad": torch.optim.Adagrad,
               "rmsprop": torch.optim.RMSprop}


CELL_MODELS = list(TORCH_CELLS)  # torch_rnn, torch_gru, torch_lstm
GATED = ["torch_gru", "torch_lstm"]


def make_group(*, hidden=5, bias=True, num_layers=1, nonlinearity="tanh", dtype="float64",
               example=EXAMPLE, model="torch_rnn"):
    args = (("num_layers", num_layers),)
    if model == "torch_rnn":
        args += (("nonlinearity", nonlinearity),)
    return GroupSpec(model=model, vocab_size=len(example.vocab),
                     inputs=tuple(example.inputs.tolist()), targets=tuple(example.targets.tolist()),
                     hidden_size=hidden, bias=bias, model_args=args, dtype=dtype)


def make_member(seed, hparams=None, optimizer="rmsprop", flags=None) -> MemberSpec:
    return MemberSpec(seed, dict(hparams or {}), optimizer, tuple((flags or {}).items()))


def build_single(group: GroupSpec, seed: int) -> nn.Module:
    return build(group.vocab_size, group.hidden_size, seed=seed, bias=group.bias, dtype=group.dtype,
                 num_layers=group.model_arg("num_layers"),
                 nonlinearity=group.model_arg("nonlinearity", "tanh"), cell=TORCH_CELLS[group.model])


def single_run(group: GroupSpec, member: MemberSpec, epochs: int, nudge: bool = False):
    """The plain loop: zero_grad, forward, loss, backward, step. -> losses, spelled, final state.
    nudge: move every gradient by one ulp (torch.nextafter) at every epoch, as a different
    summation order would, to see how much this very trajectory amplifies rounding differences."""
    model = build_single(group, member.seed)
    kwargs = dict(member.hparams, **dict(member.flags))
    if "betas" in kwargs:
        kwargs["betas"] = tuple(kwargs["betas"])
    optimizer = TORCH_OPTIM[member.optimizer](model.parameters(), **kwargs)
    inputs, targets = torch.tensor(group.inputs), torch.tensor(group.targets)
    criterion = nn.CrossEntropyLoss()
    losses, spelled = [], []
    for _ in range(epochs):
        optimizer.zero_grad()
        logits = model(inputs)
        loss = criterion(logits, targets)
        loss.backward()
        if nudge:
            with torch.no_grad():
                for param in model.parameters():
                    param.grad.copy_(torch.nextafter(param.grad, torch.full_like(param.grad, math.inf)))
        optimizer.step()
        losses.append(loss.item())
        spelled.append(bool((logits.argmax(-1) == targets).all()))
    state = {k: v.detach().double().numpy() for k, v in model.state_dict().items()}
    return np.array(losses), np.array(spelled), state


def stacked_run(group, members, epochs):
    engine = TorchStackEngine(group, members)
    steps = [engine.step() for _ in range(epochs)]
    losses = np.stack([s[0] for s in steps], axis=1)  # (M, epochs)
    spelled = np.stack([s[1] for s in steps], axis=1)
    return engine, losses, spelled


# The first epochs must agree to this whatever the trajectory: a wrong gradient or update shows
# there long before any rounding difference has grown.
EARLY_EPOCHS, EARLY_RTOL = 5, 1e-12


def assert_follows_torch(actual, ref, nudged, rtol, what, atol=0.0, trajectory=True):
    """actual equals torch's ref to rtol (1e-9), except where torch's own trajectory is chaotic:
    there it may differ by up to 10x what one ulp on every gradient changes in torch's own run
    (nudged). The stacked engine sums in another order than torch's kernels (and than another
    CPU's kernels), so a trajectory that amplifies 1e-16 differences to 1e-7 in 100 epochs
    cannot be matched to 1e-9 by anything but torch's own code on the same CPU."""
    actual, ref, nudged = (np.asarray(a, float) for a in (actual, ref, nudged))
    allowed = np.maximum(rtol * np.abs(ref) + atol, 10 * np.abs(nudged - ref))
    if trajectory:  # losses by epoch: the first epochs with no slack
        allowed[:EARLY_EPOCHS] = EARLY_RTOL * np.abs(ref[:EARLY_EPOCHS]) + atol
    bad = np.flatnonzero(~(np.abs(actual - ref) <= allowed))
    assert not len(bad), (f"{what}: {len(bad)} values off, first at {bad[0]}: {actual.flat[bad[0]]!r} "
                          f"vs torch {ref.flat[bad[0]]!r} (torch nudged by one ulp: "
                          f"{nudged.flat[bad[0]]!r})")


# The trained weights get an absolute slack of 1e-8: a gradient that cancels to nearly zero carries
# a rounding error relative to its terms, not to itself, and an adaptive optimizer with eps 1e-18
# turns it into a step of order lr (seen on one CPU: one weight of 30 off by 2e-9 after 100 epochs
# of RMSprop, eps 1e-18, while the loss stayed within 1e-9).
def assert_matches_single_runs(group, members, epochs=100, rtol=1e-9, state_atol=1e-8):
    engine, losses, spelled = stacked_run(group, members, epochs)
    assert losses.dtype == np.float64 and spelled.dtype == bool
    for i, member in enumerate(members):
        ref_losses, ref_spelled, ref_state = single_run(group, member, epochs)
        nudged_losses, nudged_spelled, nudged_state = single_run(group, member, epochs, nudge=True)
        assert_follows_torch(losses[i], ref_losses, nudged_losses, rtol, f"member {i} {member} loss")
        stable = ref_spelled == nudged_spelled  # where torch's own argmax does not flip
        np.testing.assert_array_equal(spelled[i][stable], ref_spelled[stable], err_msg=f"member {i} {member}")
        exported = engine.export(i)
        assert list(exported) == list(ref_state)
        for key, value in ref_state.items():
            assert exported[key].dtype == np.float64 and exported[key].shape == value.shape
            assert_follows_torch(exported[key], value, nudged_state[key], rtol, f"member {i} {key}",
                                 atol=state_atol, trajectory=False)
    return losses, spelled


# ---- initial weights ----------------------------------------------------------------------------

@pytest.mark.parametrize("model", CELL_MODELS)
@pytest.mark.parametrize("num_layers,bias,dtype", [(1, True, "float64"), (2, False, "float64"), (3, True, "float32")])
def test_initial_weights_are_builds(num_layers, bias, dtype, model):
    group = make_group(num_layers=num_layers, bias=bias, dtype=dtype, hidden=7, model=model)
    seeds = [0, 1, 12345, 2**31 + 5]
    engine = TorchStackEngine(group, [MemberSpec(s) for s in seeds])
    for i, seed in enumerate(seeds):
        expected = build_single(group, seed).state_dict()
        exported = engine.export(i)
        assert list(exported) == list(expected)
        for key, value in expected.items():
            np.testing.assert_array_equal(exported[key], value.double().numpy(), err_msg=key)


# ---- gradients ----------------------------------------------------------------------------------

def engine_with_autograd_checked(group: GroupSpec, seeds=(3, 4, 5), rtol=1e-11) -> TorchStackEngine:
    """An engine whose first loss and gradients (every parameter, every member) equal torch
    autograd's on the member's single model."""
    engine = TorchStackEngine(group, [MemberSpec(s) for s in seeds])
    loss, _ = engine.model.loss_and_grad(engine.params, engine.grads)
    for i, seed in enumerate(seeds):
        single = build_single(group, seed)
        assert isinstance(single.rnn, {"torch_rnn": nn.RNN, "torch_gru": nn.GRU, "torch_lstm": nn.LSTM}[group.model])
        out = nn.functional.cross_entropy(single(torch.tensor(group.inputs)), torch.tensor(group.targets))
        out.backward()
        assert loss[i].item() == pytest.approx(out.item(), rel=1e-13)
        for key, param in single.named_parameters():
            np.testing.assert_allclose(engine.grads[key][..., i].numpy(), param.grad.numpy(), rtol=rtol,
                                       atol=1e-14, err_msg=key)
    return engine


@pytest.mark.parametrize("num_layers,nonlinearity,bias", [(1, "tanh", True), (2, "relu", False), (3, "tanh", True)])
def test_gradients_equal_autograd(num_layers, nonlinearity, bias):
    engine_with_autograd_checked(make_group(num_layers=num_layers, nonlinearity=nonlinearity, bias=bias))


@pytest.mark.parametrize("model", GATED)
@pytest.mark.parametrize("num_layers,bias,hidden", [(1, True, 5), (2, False, 5), (3, True, 4), (2, True, 9)])
def test_gated_cells_gradients_equal_autograd_and_finite_differences(model, num_layers, bias, hidden):
    """The hand-written BPTT of nn.GRU and nn.LSTM against torch autograd (every parameter, every
    member), and against central differences of the stacked loss itself in a few coordinates."""
    engine = engine_with_autograd_checked(
        make_group(num_layers=num_layers, bias=bias, hidden=hidden, model=model), rtol=1e-10)
    assert_central_differences(engine, num_layers)


@pytest.mark.parametrize("model", CELL_MODELS)
def test_products_column_by_column_give_the_same_gradients(model, monkeypatch):
    """Large batches take the column-by-column products (no (T, R, C, M) or (R, C, M)
    temporaries): forced here at M = 3, they must give autograd's gradients too."""
    monkeypatch.setattr(torch_stack, "BROADCAST_LIMIT", 0)
    monkeypatch.setattr(torch_stack, "MATVEC_BROADCAST_LIMIT", 0)
    engine_with_autograd_checked(make_group(num_layers=2, model=model), rtol=1e-10)


def assert_central_differences(engine: TorchStackEngine, num_layers: int) -> None:
    """The gradients in a few coordinates against central differences of the stacked loss."""
    scratch = {k: torch.empty_like(v) for k, v in engine.grads.items()}
    rng = np.random.default_rng(0)
    for key in ("rnn.weight_hh_l0", f"rnn.weight_ih_l{num_layers - 1}", "fc.weight"):
        view = engine.params[key]
        for _ in range(3):
            index = tuple(int(rng.integers(n)) for n in view.shape[:-1])
            h, saved = 1e-6, view[index].clone()
            view[index] = saved + h
            up, _ = engine.model.loss_and_grad(engine.params, scratch)
            view[index] = saved - h
            down, _ = engine.model.loss_and_grad(engine.params, scratch)
            view[index] = saved
            numeric = ((up - down) / (2 * h)).numpy()
            np.testing.assert_allclose(engine.grads[key][index].numpy(), numeric, rtol=1e-5, atol=1e-9,
                                       err_msg=f"{key}{index}")


# ---- whole trajectories ------------------------------------------------------------------------

OPTIMIZER_CASES = [
    ("sgd", {}, [dict(lr=0.5), dict(lr=0.3, momentum=0.9), dict(lr=0.2, momentum=0.5, dampening=0.2, weight_decay=0.01)]),
    ("sgd", {"nesterov": True}, [dict(lr=0.2, momentum=0.9), dict(lr=0.5, momentum=0.5, weight_decay=0.001)]),
    ("sgd", {"maximize": True}, [dict(lr=0.01), dict(lr=0.005, momentum=0.5)]),
    ("adam", {}, [dict(lr=0.01), dict(lr=0.05, betas=(0.8, 0.99), eps=1e-6), dict(lr=0.02, weight_decay=0.01)]),
    ("adam", {"amsgrad": True}, [dict(lr=0.01, betas=(0.9, 0.99)), dict(lr=0.03, weight_decay=0.001)]),
    ("adam", {"decoupled_weight_decay": True}, [dict(lr=0.01, weight_decay=0.1), dict(lr=0.05, weight_decay=0.01)]),
    ("adam", {"maximize": True}, [dict(lr=0.001), dict(lr=0.002, betas=(0.5, 0.9))]),
    ("adagrad", {}, [dict(lr=0.1), dict(lr=0.3, lr_decay=0.01, eps=1e-18), dict(lr=0.1, weight_decay=0.01),
                     dict(lr=0.2, initial_accumulator_value=0.1)]),
    ("adagrad", {"maximize": True}, [dict(lr=0.01), dict(lr=0.02, lr_decay=0.1)]),
    ("rmsprop", {}, [dict(lr=0.01), dict(lr=0.05, alpha=0.9, eps=1e-18), dict(lr=0.01, momentum=0.5),
                     dict(lr=0.02, alpha=0.5, weight_decay=0.01)]),
    ("rmsprop", {"centered": True}, [dict(lr=0.01, momentum=0.3), dict(lr=0.02, alpha=0.9)]),
    ("rmsprop", {"maximize": True}, [dict(lr=0.001), dict(lr=0.001, momentum=0.5)]),
]


@pytest.mark.parametrize("model", CELL_MODELS)
@pytest.mark.parametrize("optimizer,flags,hparams", OPTIMIZER_CASES,
                         ids=[f"{c[0]}-{'-'.join(c[1]) or 'plain'}" for c in OPTIMIZER_CASES])
def test_members_match_single_runs(optimizer, flags, hparams, model):
    members = [make_member(seed, hp, optimizer, flags) for seed, hp in zip([0, 1, 2, 3], hparams)]
    assert_matches_single_runs(make_group(model=model), members)


@pytest.mark.parametrize("model", CELL_MODELS)
def test_one_batch_mixes_optimizers_and_flags(model):
    """Every optimizer and flag case of OPTIMIZER_CASES in one batch, interleaved so that some
    optimizers' members are not contiguous (gathered) and some are (views), then members leave:
    each member still follows its own single run."""
    group = make_group(model=model)
    cases = [(optimizer, flags, hp) for optimizer, flags, hps in OPTIMIZER_CASES for hp in hps[:2]]
    members = [make_member(i % 7, hp, optimizer, flags) for i, (optimizer, flags, hp) in enumerate(cases)]
    members = members[1::2] + members[::2]  # each case's two members now far apart
    members += [make_member(9, dict(lr=0.01 * k), "adagrad") for k in range(1, 4)]  # one contiguous run
    assert_matches_single_runs(group, members, epochs=60)
    engine = TorchStackEngine(group, members)
    for _ in range(20):
        engine.step()
    mask = np.arange(len(members)) % 3 != 1
    engine.keep(mask)
    rest = np.stack([engine.step()[0] for _ in range(40)], 1)
    for j, i in enumerate(np.flatnonzero(mask)):
        ref, _, _ = single_run(group, members[i], 60)
        nudged, _, _ = single_run(group, members[i], 60, nudge=True)
        assert_follows_torch(rest[j], ref[20:], nudged[20:], 1e-9, f"member {i} {members[i]}")


@pytest.mark.parametrize("num_layers,nonlinearity,bias", [(2, "tanh", True), (1, "tanh", False), (1, "relu", True),
                                                          (2, "relu", False)])
def test_model_variants_match_single_runs(num_layers, nonlinearity, bias):
    group = make_group(num_layers=num_layers, nonlinearity=nonlinearity, bias=bias)
    members = [make_member(0, dict(lr=0.01), "adam", {"amsgrad": True}),
               make_member(3, dict(lr=0.02, betas=(0.8, 0.95)), "adam", {"amsgrad": True})]
    assert_matches_single_runs(group, members)


@pytest.mark.parametrize("model", GATED)
@pytest.mark.parametrize("num_layers,bias", [(2, True), (1, False), (2, False)])
def test_gated_variants_match_single_runs(model, num_layers, bias):
    group = make_group(num_layers=num_layers, bias=bias, model=model)
    members = [make_member(0, dict(lr=0.01), "adam", {"amsgrad": True}),
               make_member(3, dict(lr=0.05, alpha=0.9), "rmsprop", {"centered": True})]
    assert_matches_single_runs(group, members)


@pytest.mark.parametrize("model", GATED)
def test_gated_cells_learn_to_spell_and_keep_members(model):
    group = make_group(model=model)
    members = [make_member(s, dict(lr=0.05), "adam") for s in range(4)]
    _, full_losses, full_spelled = stacked_run(group, members, 150)
    assert full_spelled[:, -1].all() and not full_spelled[:, 0].any()
    engine = TorchStackEngine(group, members)
    first = [engine.step()[0] for _ in range(30)]
    engine.keep(np.array([False, True, False, True]))
    rest = np.stack([engine.step()[0] for _ in range(120)], 1)
    np.testing.assert_allclose(np.concatenate([np.stack(first, 1)[[1, 3]], rest], 1),
                               full_losses[[1, 3]], rtol=1e-12)


def test_same_seed_different_hparams_and_same_hparams_different_seeds():
    members = [make_member(0, dict(lr=0.01)), make_member(0, dict(lr=0.02)), make_member(1, dict(lr=0.01))]
    losses, _ = assert_matches_single_runs(make_group(), members, epochs=30)
    assert len({tuple(row) for row in losses}) == 3


def test_reports_setting_matches_until_chaos_takes_over():
    """RMSprop lr 0.4, alpha 0.5, eps 1e-18 is chaotic: a 1e-15 nudge of torch's own run grows to a
    percent within 100 epochs, so only the start of the trajectory can be compared."""
    members = [make_member(s, dict(lr=0.4, alpha=0.5, eps=1e-18)) for s in (0, 1)]
    assert_matches_single_runs(make_group(), members, epochs=6, rtol=1e-9)


def test_spelled_becomes_true_when_the_word_is_learned():
    _, losses, spelled = stacked_run(make_group(), [make_member(0, dict(lr=0.1), "adam")], epochs=100)
    assert not spelled[0, 0] and spelled[0, -1] and losses[0, -1] < 0.05


def test_longer_word_and_other_hidden_size():
    example = make_example("Acknowledgement")
    group = make_group(hidden=9, example=example)
    assert_matches_single_runs(group, [make_member(4, dict(lr=0.1), "adagrad"),
                                       make_member(5, dict(lr=0.05, eps=1e-18), "adagrad")], epochs=40)


# ---- keep ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("optimizer,flags,hp", [("rmsprop", {"centered": True}, dict(momentum=0.5)),
                                                ("adam", {"amsgrad": True}, {}),
                                                ("sgd", {"nesterov": True}, dict(momentum=0.9))])
def test_keep_removes_members_without_disturbing_the_others(optimizer, flags, hp):
    group = make_group()
    members = [make_member(s, dict(hp, lr=0.01 * (s + 1)), optimizer, flags) for s in range(5)]
    _, full_losses, full_spelled = stacked_run(group, members, 60)
    engine = TorchStackEngine(group, members)
    first = [engine.step()[0] for _ in range(20)]
    engine.keep(np.array([True, False, True, False, True]))
    engine.keep(np.array([False, True, True]))  # members 2 and 4 remain
    rest = [engine.step() for _ in range(40)]
    assert all(len(s[0]) == 2 for s in rest)
    losses = np.concatenate([np.stack(first, 1)[[2, 4]], np.stack([s[0] for s in rest], 1)], axis=1)
    np.testing.assert_allclose(losses, full_losses[[2, 4]], rtol=1e-12)
    np.testing.assert_array_equal(np.stack([s[1] for s in rest], 1), full_spelled[[2, 4], 20:])
    _, _, state = single_run(group, members[4], 60)
    _, _, nudged = single_run(group, members[4], 60, nudge=True)
    for key, value in engine.export(1).items():
        assert_follows_torch(value, state[key], nudged[key], 1e-9, key, atol=1e-12, trajectory=False)


def test_keep_everything_and_nothing():
    engine = TorchStackEngine(make_group(), [make_member(s, dict(lr=0.01)) for s in range(3)])
    engine.step()
    engine.keep(np.ones(3, bool))
    assert engine.step()[0].shape == (3,)
    engine.keep(np.zeros(3, bool))
    loss, spelled = engine.step()
    assert loss.shape == (0,) and spelled.shape == (0,)


# ---- float32 ------------------------------------------------------------------------------------

@pytest.mark.parametrize("optimizer,hp", [("adam", dict(lr=0.01)), ("rmsprop", dict(lr=0.01, alpha=0.9)),
                                          ("sgd", dict(lr=0.3, momentum=0.5)), ("adagrad", dict(lr=0.1))])
def test_float32_agrees_with_single_float32_runs(optimizer, hp):
    group = make_group(dtype="float32")
    members = [make_member(0, hp, optimizer), make_member(1, dict(hp, lr=hp["lr"] / 2), optimizer)]
    engine, losses, _ = stacked_run(group, members, 100)
    for i, member in enumerate(members):
        ref_losses, _, ref_state = single_run(group, member, 100)
        np.testing.assert_allclose(losses[i], ref_losses, rtol=2e-3, atol=1e-5)
        # adaptive optimizers divide tiny gradients by their own running scale, so float32 rounding
        # can move a weight with a near-zero gradient by ~lr per step: compare weights loosely
        for key, value in engine.export(i).items():
            np.testing.assert_allclose(value, ref_state[key], atol=2e-2, err_msg=key)


# ---- layout and errors --------------------------------------------------------------------------

def test_parameter_views_share_the_flat_buffer():
    engine = TorchStackEngine(make_group(num_layers=2), [MemberSpec(0), MemberSpec(1)])
    total = sum(v[..., 0].numel() for v in engine.params.values())
    assert engine.flat.shape == (total, 2)
    for view in flat_views(engine.flat, engine.shapes).values():
        assert view.is_contiguous() and view.untyped_storage().data_ptr() == engine.flat.untyped_storage().data_ptr()


@pytest.mark.parametrize("change,match", [
    (dict(model="numpy_rnn"), "model='numpy_rnn'"),
    (dict(dtype="float16"), "dtype='float16'"),
    (dict(hidden_size=0), "hidden_size=0"),
    (dict(model_args=(("num_layers", 0),)), "num_layers=0"),
    (dict(model_args=(("nonlinearity", "sigmoid"),)), "nonlinearity='sigmoid'"),
    (dict(model_args=(("dropout", 0.1),)), "unknown key 'dropout'"),
    (dict(model="torch_gru", model_args=(("nonlinearity", "relu"),)), "unknown key 'nonlinearity' for torch_gru"),
    (dict(inputs=(0, 1, 99)), "inputs/targets must be equally long"),
    (dict(targets=(0, 1, 2, 3, 4, 5, 99)), "character index 99"),
])
def test_bad_groups_are_named(change, match):
    fields = make_group().__dict__ | change
    with pytest.raises(StackConfigError, match=match):
        TorchStackEngine(GroupSpec(**fields), [MemberSpec(0)])


def test_bad_members_and_masks_are_named():
    with pytest.raises(StackConfigError, match="at least one member"):
        TorchStackEngine(make_group(), [])
    with pytest.raises(OptimizerConfigError, match="member 1 alpha=-0.5"):
        TorchStackEngine(make_group(), [make_member(0), make_member(1, dict(alpha=-0.5))])
    with pytest.raises(OptimizerConfigError, match="unknown optimizer 'lbfgs'"):
        TorchStackEngine(make_group(), [make_member(0), make_member(1, optimizer="lbfgs")])
    engine = TorchStackEngine(make_group(), [MemberSpec(0), MemberSpec(1)])
    with pytest.raises(StackConfigError, match="mask must be a bool array of shape"):
        engine.keep(np.array([1, 0]))
    with pytest.raises(IndexError, match="member 2 out of range"):
        engine.export(2)


def test_model_math_is_shared_by_dtype():
    for dtype in DTYPES:
        engine = TorchStackEngine(make_group(dtype=dtype), [MemberSpec(0)])
        assert isinstance(engine.model, StackedCharRNN) and engine.flat.dtype == DTYPES[dtype]


@pytest.mark.parametrize("model,gates", [("torch_rnn", 1), ("torch_gru", 3), ("torch_lstm", 4)])
def test_gated_layouts_are_the_modules_own(model, gates):
    group = make_group(model=model, num_layers=2, hidden=6)
    engine = TorchStackEngine(group, [MemberSpec(0)])
    expected = {k: tuple(v.shape) for k, v in build_single(group, 0).state_dict().items()}
    assert {k: tuple(v.shape[:-1]) for k, v in engine.params.items()} == expected
    assert expected["rnn.weight_hh_l1"] == (gates * 6, 6)
