"""Checkpoints: every run keeps its weights; rnnexp-generate spells from them; bad files are refused."""
import io
import zipfile

import numpy as np
import pytest

from conftest import CONF, run_cli
from rnnexp import checkpoint
from rnnexp.checkpoint import CheckpointError
from rnnexp.generate import generate, layers_from
from rnnexp.train import save_result, train


ACKNOWLEDGEMENT = ["word=Acknowledgement", "model.hidden_size=15", "optimizer=adam",
                   "optimizer.lr=0.05", "train.epochs=150"]


@pytest.fixture(scope="module")
def acknowledgement_run(tmp_path_factory):
    """A converging Q2(i)-style run, trained through the real CLI."""
    out = tmp_path_factory.mktemp("ack") / "run"
    proc = run_cli("rnnexp-train", *ACKNOWLEDGEMENT, f"hydra.run.dir={out}", cwd=out.parent)
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="module")
def acknowledgement_in_process(tmp_path_factory):
    """The same run, trained and saved in this process as rnnexp-train's app does."""
    from hydra import compose, initialize_config_dir

    from rnnexp.config import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=ACKNOWLEDGEMENT)
    out = tmp_path_factory.mktemp("ack_in_process")
    save_result(out, train(cfg), cfg)
    return out


def generate_main(capsys, *args: str) -> list[str]:
    """rnnexp-generate's main in this process: the texts it prints."""
    from rnnexp.cli.generate import main

    main(list(args))
    return capsys.readouterr().out.split()


def test_generate_main_spells_and_samples(acknowledgement_in_process, capsys):
    run = str(acknowledgement_in_process)
    assert generate_main(capsys, run, "--start", "A") == ["Acknowledgement"]
    (longer,) = generate_main(capsys, run, "--start", "Ack", "--length", "20")
    assert len(longer) == 20 and longer.startswith("Acknowledgement")
    args = [run, "--temperature", "2.0", "--samples", "4", "--seed", "1"]
    a, b = generate_main(capsys, *args), generate_main(capsys, *args)
    assert a == b and len(a) == 4 and all(s.startswith("A") and len(s) == 15 for s in a)


GENERATE_BAD = [
    (["--start", "Az"], "character 'z' is not in the model's vocabulary"),
    (["--length", "0"], "--length: must be >= 1"),
    (["--temperature", "-1"], "--temperature: must be a finite number >= 0"),
    (["--temperature", "nan"], "--temperature: must be a finite number >= 0"),
    (["--samples", "0"], "--samples: must be >= 1"),
    (["--start", ""], "--start: must hold at least one character"),
    (["--length", "many"], "argument --length: invalid int value: 'many'"),
]


@pytest.mark.parametrize("args,message", GENERATE_BAD, ids=[" ".join(a) for a, _ in GENERATE_BAD])
def test_bad_generate_arguments(acknowledgement_in_process, capsys, monkeypatch, args, message):
    from rnnexp.cli.generate import main

    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)  # one line, not the traceback

    with pytest.raises(SystemExit) as stop:
        main([str(acknowledgement_in_process), *args])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith("rnnexp-generate: error: ") and message in err


def test_a_missing_run_dir_is_one_line(tmp_path, capsys, monkeypatch):
    from rnnexp.cli.generate import main

    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)

    with pytest.raises(SystemExit) as stop:
        main([str(tmp_path / "nothing")])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"rnnexp-generate: error: no checkpoint at '{tmp_path / 'nothing'}'")


@pytest.mark.slow
def test_generate_spells_the_trained_word(acknowledgement_run):
    proc = run_cli("rnnexp-generate", str(acknowledgement_run), "--start", "A",
                   cwd=acknowledgement_run)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "Acknowledgement"
    longer = run_cli("rnnexp-generate", str(acknowledgement_run), "--start", "Ack", "--length", "20",
                     cwd=acknowledgement_run)
    assert len(longer.stdout.strip()) == 20 and longer.stdout.startswith("Acknowledgement")


@pytest.mark.slow
def test_sampling_is_seeded_and_temperature_controls_it(acknowledgement_run):
    args = [str(acknowledgement_run), "--temperature", "2.0", "--samples", "4", "--seed", "1"]
    a = run_cli("rnnexp-generate", *args, cwd=acknowledgement_run).stdout.split()
    b = run_cli("rnnexp-generate", *args, cwd=acknowledgement_run).stdout.split()
    assert a == b and len(a) == 4 and all(s.startswith("A") and len(s) == 15 for s in a)
    cold = run_cli("rnnexp-generate", str(acknowledgement_run), "--temperature", "0.01",
                   "--samples", "3", cwd=acknowledgement_run).stdout.split()
    assert cold == ["Acknowledgement"] * 3


@pytest.mark.slow
def test_a_bad_generate_argument_through_the_cli(acknowledgement_run):
    """One case through the script; every bad argument: test_bad_generate_arguments above."""
    proc = run_cli("rnnexp-generate", str(acknowledgement_run), "--start", "Az",
                   cwd=acknowledgement_run)
    assert proc.returncode == 2 and "character 'z' is not in the model's vocabulary" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_round_trip_and_generation_match_the_run(make_cfg, tmp_path):
    cfg = make_cfg("model=numpy_rnn", "optimizer=sgd", "word='hello world'", "model.hidden_size=8",
                   "optimizer.lr=0.05", "train.epochs=30")
    result = train(cfg)
    save_result(tmp_path, result, cfg)
    params, vocab, meta = checkpoint.load(tmp_path)
    assert vocab == result.vocab and meta["word"] == "hello world" and meta["model"] == "numpy_rnn"
    assert params.keys() == result.params.keys()
    assert all(np.array_equal(params[k], result.params[k]) for k in params)
    ids = [vocab.index("h")]
    text = "".join(vocab[i] for i in generate(layers_from(params), ids, 11))
    assert text == result.metrics["generated"]


@pytest.mark.parametrize("model,cell", [("torch_gru", "gru"), ("torch_lstm", "lstm")])
def test_gated_cells_generate_from_their_checkpoint(make_cfg, tmp_path, model, cell):
    """A GRU or LSTM run's model.npz: rnnexp-generate spells what the run generated, and what the
    nn module with those weights generates by re-running every prefix."""
    import torch

    from greedy import torch_greedy
    from rnnexp.cli.generate import parse_args, run
    from rnnexp.models.torch_rnn import build

    cfg = make_cfg(f"model={model}", "model.num_layers=2", "optimizer=rmsprop", "optimizer.lr=0.02",
                   "train.epochs=120")
    result = train(cfg)
    save_result(tmp_path, result, cfg)
    params, vocab, meta = checkpoint.load(tmp_path)
    assert meta["model"] == model and meta["model_args"] == {"num_layers": 2}
    assert run(parse_args([str(tmp_path)])) == [result.metrics["generated"]] == ["edgement"]
    module = build(len(vocab), 5, seed=0, num_layers=2, cell=cell)
    module.load_state_dict({k: torch.tensor(v) for k, v in params.items()})
    for start in ("e", "dg", "m"):
        ids = [vocab.index(c) for c in start]
        texts = run(parse_args([str(tmp_path), "--start", start, "--length", "12"]))
        assert texts == ["".join(vocab[i] for i in torch_greedy(module, ids, 12))]
    sampled = run(parse_args([str(tmp_path), "--temperature", "1.5", "--samples", "3", "--seed", "4"]))
    assert len(sampled) == 3 and all(len(t) == 8 and set(t) <= set(vocab) for t in sampled)


def test_no_checkpoint_when_switched_off(make_cfg, tmp_path):
    cfg = make_cfg("train.epochs=2", "train.checkpoint=false")
    save_result(tmp_path, train(cfg), cfg)
    assert not (tmp_path / "model.npz").exists() and (tmp_path / "metrics.json").exists()
    with pytest.raises(CheckpointError, match="no checkpoint"):
        checkpoint.load(tmp_path)


def _rewrite(path, change):
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    change(arrays)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    path.write_bytes(buf.getvalue())


def test_tampered_foreign_and_broken_files_are_refused(make_cfg, tmp_path):
    cfg = make_cfg("train.epochs=2")
    save_result(tmp_path, train(cfg), cfg)
    path = tmp_path / "model.npz"
    good = path.read_bytes()

    _rewrite(path, lambda a: a.__setitem__("fc.bias", a["fc.bias"] + 1.0))
    with pytest.raises(CheckpointError, match="does not match its digest"):
        checkpoint.load(path)

    np.savez(path, weights=np.ones(3))  # someone else's npz
    with pytest.raises(CheckpointError, match="is not an rnnexp checkpoint"):
        checkpoint.load(path)

    with zipfile.ZipFile(path, "w") as z:  # an object array needs pickle: never loaded
        buf = io.BytesIO()
        np.save(buf, np.array([{"evil": 1}], dtype=object), allow_pickle=True)
        z.writestr("payload.npy", buf.getvalue())
    with pytest.raises(CheckpointError, match="not a readable rnnexp checkpoint"):
        checkpoint.load(path)

    path.write_bytes(good[: len(good) // 2])  # truncated
    with pytest.raises(CheckpointError, match="not a readable rnnexp checkpoint"):
        checkpoint.load(path)

    path.write_bytes(good)
    checkpoint.load(path)
