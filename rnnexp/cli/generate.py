"""rnnexp-generate RUN_DIR: ask a trained model to spell."""
from __future__ import annotations

import argparse

import numpy as np

from rnnexp import checkpoint
from rnnexp.cli import OneLineParser, guarded
from rnnexp.config import TORCH_CELLS
from rnnexp.generate import generate, layers_from


def parse_args(argv=None) -> argparse.Namespace:
    p = OneLineParser(
        prog="rnnexp-generate",
        description="Generate text from the model a run saved (its run dir's model.npz).")
    p.add_argument("run_dir", help="a run dir (or its model.npz)")
    p.add_argument("--start", help="start string (default: the first character of the trained word)")
    p.add_argument("--length", type=int, help="total length in characters (default: the word's length)")
    p.add_argument("--temperature", type=float, default=0.0,
                   help="0 = greedy argmax (default); > 0 samples from softmax(logits / T)")
    p.add_argument("--samples", type=int, default=1, help="how many texts to print (default 1)")
    p.add_argument("--seed", type=int, default=0, help="random seed for sampling (default 0)")
    return p.parse_args(argv)


def run(args: argparse.Namespace) -> list[str]:
    params, vocab, meta = checkpoint.load(args.run_dir)
    word = meta.get("word", "")
    start = args.start if args.start is not None else word[:1]
    length = args.length if args.length is not None else len(word)
    if not start:
        raise ValueError("--start: must hold at least one character")
    if length < 1:
        raise ValueError(f"--length: must be >= 1, got {length}")
    if args.temperature < 0 or not np.isfinite(args.temperature):
        raise ValueError(f"--temperature: must be a finite number >= 0, got {args.temperature}")
    if args.samples < 1:
        raise ValueError(f"--samples: must be >= 1, got {args.samples}")
    index = {c: i for i, c in enumerate(vocab)}
    for c in start:
        if c not in index:
            raise ValueError(f"--start: character {c!r} is not in the model's vocabulary "
                             f"{''.join(vocab)!r}")
    net = layers_from(params, meta.get("model_args", {}).get("nonlinearity", "tanh"),
                      TORCH_CELLS.get(meta.get("model"), "rnn"))
    rng = np.random.default_rng(args.seed)
    start_ids = [index[c] for c in start]
    return ["".join(vocab[i] for i in generate(net, start_ids, length, args.temperature, rng))
            for _ in range(args.samples)]


def main(argv=None) -> None:
    args = parse_args(argv)
    for text in guarded("rnnexp-generate", lambda: run(args)):
        print(text)


if __name__ == "__main__":
    main()
