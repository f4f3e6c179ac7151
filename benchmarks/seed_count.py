"""How many seeds a table needs: two of REPORT.md's comparisons on the first 5, 10 and 20 seeds
of the committed runs (results/record.jsonl.gz), with their 95 % intervals and tests.

    python benchmarks/seed_count.py [--results results]

docs/statistics.md quotes its output: why the tables run 20 seeds.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from rnnexp.claims import _bias_frames, _reading, _size_frame
from rnnexp.record import collection_of, read_entries
from rnnexp.report import report_sweeps
from rnnexp.results import Results
from rnnexp.stats import paired
from rnnexp.tables import build_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path("results"))
    results = Results(parser.parse_args().results)
    collection = collection_of(read_entries(results.record), results.root)
    tables = {s.name: build_table(s, collection) for s in report_sweeps(False)}
    bias = _bias_frames(tables, _reading)
    bias = bias[bias.setting == "lr 0.001, loss after 5000 epochs"].sort_values("seed")
    rms = tables["q2i_rmsprop"]
    sizes = _size_frame(rms, _reading(rms)).pivot_table(index="seed", columns="size",
                                                         values="value")
    cases = {"Q1 loss with bias / without (lr 0.001, 5000 epochs)":
             (bias.with_bias.to_numpy(), bias.without_bias.to_numpy()),
             "Q2(i) RMSprop loss at hidden 50 / hidden 20":
             (sizes[50].to_numpy(), sizes[20].to_numpy())}
    print("| comparison | seeds | ratio | 95 % CI | CI width | Wilcoxon p | verdict |")
    print("|---|---|---|---|---|---|---|")
    for name, (a, b) in cases.items():
        for n in (5, 10, 20):
            if n > len(a):
                continue
            e = paired(a[:n], b[:n])
            call = "too close to call" if e.too_close else "lower" if e.direction < 0 else "higher"
            print(f"| {name} | {n} | {e.estimate:.3f} | {e.low:.3f}–{e.high:.3f} | "
                  f"{e.high - e.low:.3f} | {e.p:.2g} | {call} |")


if __name__ == "__main__":
    main()
