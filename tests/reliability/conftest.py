"""Counts for the README's reliability figures: tests call `tally(kind, n)` once their checks have
passed; the session prints the totals (and writes them to $RNNEXP_RELIABILITY_JSON if set)."""
import json
import os
from collections import Counter

import pytest

COUNTS: Counter = Counter()
LABELS = {
    "bad_inputs": "bad inputs rejected with one line",
    "kill_points": "SIGKILL points survived",
    "corrupt_files": "corrupt files reported and skipped or repaired",
    "concurrent": "concurrent-run checks",
    "lost": "runs/trials lost",
}


@pytest.fixture
def tally():
    def add(kind: str, n: int = 1) -> None:
        assert kind in LABELS, kind
        COUNTS[kind] += n
    return add


def pytest_terminal_summary(terminalreporter):
    if not COUNTS:
        return
    terminalreporter.section("reliability figures")
    for kind, label in LABELS.items():
        terminalreporter.write_line(f"{label}: {COUNTS.get(kind, 0)}")
    if path := os.environ.get("RNNEXP_RELIABILITY_JSON"):
        with open(path, "w", encoding="utf-8") as f:
            json.dump({k: COUNTS.get(k, 0) for k in LABELS}, f, indent=1)
