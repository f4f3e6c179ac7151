"""A word as a training example: vocabulary, index sequences and one-hot encoding.

The model reads word[:-1] and must predict word[1:], one character at a time.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class DataError(ValueError):
    """The word cannot be used as a training example."""


@dataclass(frozen=True)
class Vocab:
    """The word's distinct characters, sorted (case-sensitive, any Unicode)."""

    chars: tuple[str, ...]

    @classmethod
    def from_text(cls, text: str) -> "Vocab":
        return cls(tuple(sorted(set(text))))

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        index = {c: i for i, c in enumerate(self.chars)}
        missing = [c for c in text if c not in index]
        if missing:
            raise DataError(f"character {missing[0]!r} is not in the vocabulary {''.join(self.chars)!r}")
        return np.array([index[c] for c in text], dtype=np.int64)

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in ids)


@dataclass(frozen=True)
class Example:
    """word[:-1] -> word[1:] as index sequences of length T = len(word) - 1."""

    word: str
    vocab: Vocab
    inputs: np.ndarray  # (T,) int64
    targets: np.ndarray  # (T,) int64


def make_example(word: str) -> Example:
    if not isinstance(word, str):
        raise DataError(f"word must be a string, got {type(word).__name__}")
    if len(word) < 2:
        raise DataError(f"word must have at least two characters, got {word!r}")
    vocab = Vocab.from_text(word)
    ids = vocab.encode(word)
    return Example(word=word, vocab=vocab, inputs=ids[:-1], targets=ids[1:])
