"""The training loop: metrics, convergence, generation, divergence, pruning, determinism."""
import json

import numpy as np
import pytest
import torch

from greedy import torch_greedy
from rnnexp.converge import epochs_to_converge
from rnnexp.generate import generate, layers_from
from rnnexp.models.torch_rnn import build
from rnnexp.train import train


def test_epochs_to_converge_is_the_first_epoch_of_the_final_good_stretch():
    loss = np.array([1.0, 1e-6, 1e-6, 0.2, 1e-6, 1e-6])
    spelled = np.array([0, 1, 1, 1, 1, 1], bool)
    assert epochs_to_converge(loss, spelled, 5e-5) == 5
    spelled[-1] = False
    assert epochs_to_converge(loss, spelled, 5e-5) is None
    assert epochs_to_converge(np.full(3, 1e-9), np.ones(3, bool), 5e-5) == 1


def test_report_setting_spells_edgement(make_cfg):
    cfg = make_cfg("optimizer.lr=0.4", "optimizer.alpha=0.5", "optimizer.eps=1e-18")
    result = train(cfg)
    m = result.metrics
    assert m["status"] == "completed" and m["epochs_run"] == 100
    assert len(result.loss) == 100 and result.loss[-1] == m["final_loss"]
    assert m["converged"] and m["generated"] == "edgement"
    assert 1 <= m["epochs_to_converge"] <= 100
    assert m["epochs_to_converge"] == epochs_to_converge(result.loss, result.spelled, 5e-5)


def test_same_config_and_seed_give_identical_results(make_cfg):
    cfg = make_cfg("optimizer=adam", "optimizer.lr=0.05", "train.epochs=30", "seed=3")
    a, b = train(cfg), train(cfg)
    a.metrics.pop("wall_time_s"), b.metrics.pop("wall_time_s")
    assert json.dumps(a.metrics) == json.dumps(b.metrics)
    assert np.array_equal(a.loss, b.loss) and np.array_equal(a.spelled, b.spelled)
    c = train(make_cfg("optimizer=adam", "optimizer.lr=0.05", "train.epochs=30", "seed=4"))
    assert not np.array_equal(a.loss, c.loss)


def test_spelled_matches_greedy_generation(make_cfg):
    """Teacher-forced argmax == targets exactly when greedy generation reproduces the word."""
    outcomes = set()
    for epochs in (5, 20, 40, 60, 80):
        result = train(make_cfg("optimizer.lr=0.4", "optimizer.alpha=0.5", f"train.epochs={epochs}"))
        vocab = result.vocab
        model = build(len(vocab), 5, seed=0, dtype="float64")
        model.load_state_dict({k: torch.tensor(v) for k, v in result.params.items()})
        ids = [vocab.index(c) for c in "edgement"]
        with torch.no_grad():
            logits = model(torch.tensor(ids[:-1]))
        teacher_forced = bool((logits.argmax(-1) == torch.tensor(ids[1:])).all())
        greedy = torch_greedy(model, ids[:1], 8) == ids
        assert teacher_forced == greedy == (result.metrics["generated"] == "edgement")
        outcomes.add(greedy)
    assert outcomes == {True, False}


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_generation_agrees_with_full_prefix_reruns(cell):
    model = build(6, 4, seed=1, num_layers=2, dtype="float64", cell=cell)
    ids = torch_greedy(model, [2], 12)
    params = {k: v.numpy() for k, v in model.state_dict().items()}
    assert generate(layers_from(params, cell=cell), [2], 12) == ids


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("num_layers,bias", [(1, True), (2, False), (3, True)])
def test_numpy_recurrence_gives_the_modules_logits(cell, num_layers, bias):
    """rnnexp.generate's step-by-step NumPy GRU/LSTM against nn.GRU/nn.LSTM on a whole sequence."""
    from rnnexp.generate import _step, initial_state

    model = build(7, 5, seed=2, num_layers=num_layers, bias=bias, dtype="float64", cell=cell)
    ids = [3, 0, 6, 6, 1, 5, 2, 4, 0]
    with torch.no_grad():
        expected = model(torch.tensor(ids)).numpy()  # (T, V)
    net = layers_from({k: v.numpy() for k, v in model.state_dict().items()}, cell=cell)
    state = initial_state(net)
    got = np.stack([_step(net, state, token) for token in ids])
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("model", ["torch_gru", "torch_lstm"])
def test_gated_cells_train_and_spell_in_a_single_run(make_cfg, model):
    result = train(make_cfg(f"model={model}", "optimizer=adam", "optimizer.lr=0.05",
                            "train.epochs=150"))
    m = result.metrics
    assert m["model"] == model and m["model_args"] == {"num_layers": 1}
    assert m["status"] == "completed" and m["generated"] == "edgement" and result.spelled[-1]
    assert set(result.params) == {"rnn.weight_ih_l0", "rnn.weight_hh_l0", "rnn.bias_ih_l0",
                                  "rnn.bias_hh_l0", "fc.weight", "fc.bias"}
    gates = {"torch_gru": 3, "torch_lstm": 4}[model]
    assert result.params["rnn.weight_hh_l0"].shape == (gates * 5, 5)


def test_divergence_is_a_result_not_a_crash(make_cfg):
    result = train(make_cfg("model.nonlinearity=relu", "optimizer=sgd", "optimizer.lr=1e30",
                            "train.epochs=50"))
    m = result.metrics
    assert m["status"] == "diverged" and not m["converged"]
    assert m["epochs_run"] == len(result.loss) < 50 and not np.isfinite(result.loss[-1])


class StopAt:
    def __init__(self, epoch):
        self.epoch, self.seen = epoch, []

    def report(self, epoch, loss):
        self.seen.append((epoch, loss))
        return epoch >= self.epoch


def test_a_hook_sees_every_epoch_and_can_prune(make_cfg):
    hook = StopAt(7)
    result = train(make_cfg("train.epochs=20"), hook)
    assert [e for e, _ in hook.seen] == list(range(1, 8))
    assert [l for _, l in hook.seen] == pytest.approx(result.loss.tolist())
    assert result.metrics["status"] == "pruned" and result.metrics["epochs_run"] == 7


def test_unicode_words_train(make_cfg):
    for word in ["naïve café", "日本語のテキスト", "🙂🙃🙂🙃x", "שלום עולם"]:
        m = train(make_cfg(f"word='{word}'", "train.epochs=5")).metrics
        assert m["word"] == word and len(m["generated"]) == len(word)


class _FakeHook:
    """A trial's hook: says stop from epoch `at` on; counts its calls."""

    def __init__(self, key, lead, at=None, report_every=10):
        self.trial_key, self.lead, self.at, self.report_every = key, lead, at, report_every
        self.calls = []

    def report(self, epoch, loss):
        self.calls.append(epoch)
        return self.at is not None and epoch >= self.at


def test_a_trials_seeds_in_one_batch_stop_together_on_one_hook(make_cfg):
    from rnnexp.train import train_group

    cfgs = [make_cfg(f"seed={s}", "train.epochs=40", "optimizer.lr=0.05") for s in range(5)]
    lead = _FakeHook("a", True, at=20)
    followers = [_FakeHook("a", False, at=1), _FakeHook("a", False, at=1)]
    alone = _FakeHook("b", False)  # a trial whose lead trains elsewhere: checked every 10 epochs
    results = train_group(cfgs, [lead, *followers, None, alone])
    assert [(r.metrics["status"], r.metrics["epochs_run"]) for r in results] == \
        [("pruned", 20), ("pruned", 20), ("pruned", 20), ("completed", 40), ("completed", 40)]
    assert lead.calls == [1, 10, 20] and followers[0].calls == followers[1].calls == []
    assert alone.calls == [1, 10, 20, 30, 40]
