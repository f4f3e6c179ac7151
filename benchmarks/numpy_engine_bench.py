"""The NumPy engine at the Q1 tables' setting: µs per member-epoch against the stack's size,
with glibc's malloc as it comes and as the engine sets it (rnnexp/engine/_malloc.py).

The Q1 sweeps train the from-scratch NumPy RNN (hidden size 50, "You are a good guy", SGD) for
5000 and 10000 epochs; the batched launcher stacks each (bias, init, loss reduction) group's
20 seeds, or 60 with three learning rates. Each size runs in a fresh process of its own, once
with malloc's defaults and once with the engine's settings, side by side in one run; epochs are
timed after a warm-up.

    .venv/bin/python benchmarks/numpy_engine_bench.py
    .venv/bin/python benchmarks/numpy_engine_bench.py --sizes 20 160 --epochs 100
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from rnnexp.data import make_example
from rnnexp.engine import GroupSpec, MemberSpec
from rnnexp.engine.numpy_engine import NumpyEngine

WORD = "You are a good guy"  # the Q1 tables' word
HIDDEN = 50


def us_per_member_epoch(size: int, epochs: int, warmup: int) -> float:
    ex = make_example(WORD)
    group = GroupSpec(model="numpy_rnn", vocab_size=len(ex.vocab),
                      inputs=tuple(ex.inputs.tolist()), targets=tuple(ex.targets.tolist()),
                      hidden_size=HIDDEN, bias=True,
                      model_args=(("init", "randn"), ("loss_reduction", "sum"), ("clip", 5.0)))
    engine = NumpyEngine(group, [MemberSpec(seed=i, hparams={"lr": 0.001}, optimizer="sgd")
                                 for i in range(size)])
    for _ in range(warmup):
        engine.step()
    start = time.perf_counter()
    for _ in range(epochs):
        engine.step()
    return (time.perf_counter() - start) / epochs / size * 1e6


def one(size: int, epochs: int, warmup: int, malloc: str) -> float:
    """µs per member-epoch in a fresh process: malloc "default" (the engine's setting skipped)
    or "kept" (as the engine sets it)."""
    code = ("import sys; sys.path.insert(0, %r)\n"
            "from rnnexp.engine import _malloc\n"
            "if %r == 'default': _malloc._done.append(False)\n"
            "import numpy_engine_bench as b\n"
            "print(b.us_per_member_epoch(%d, %d, %d))"
            % (os.path.dirname(os.path.abspath(__file__)), malloc, size, epochs, warmup))
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 20, 30, 60, 160, 480])
    parser.add_argument("--epochs", type=int, default=300, help="timed epochs per size")
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()
    print(f"NumPy engine, hidden {HIDDEN}, {WORD!r}, SGD, float64; "
          f"{len(os.sched_getaffinity(0))} cores, load {os.getloadavg()[0]:.2f}")
    print("| members | µs per member-epoch, malloc's defaults | the engine's malloc settings | ratio |")
    print("|---|---|---|---|")
    for size in args.sizes:
        default = one(size, args.epochs, args.warmup, "default")
        kept = one(size, args.epochs, args.warmup, "kept")
        print(f"| {size} | {default:.1f} | {kept:.1f} | {default / kept:.2f}× |", flush=True)


if __name__ == "__main__":
    main()
