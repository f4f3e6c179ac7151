"""rnnexp-study: the fastest-convergence study alone (search, validation on fresh seeds, sampler
comparison) into RESULTS/study/. Resumable: the same command continues where it stopped."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional

from rnnexp.cli import OneLineParser, guarded
from rnnexp.results import DEFAULT, Results, results_lock

PROG = "rnnexp-study"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = OneLineParser(
        prog=PROG,
        description="Fastest-convergence study (hidden 5, 'edgement'): search, validation on "
                    "fresh seeds, sampler comparison; outputs in RESULTS/study/.")
    parser.add_argument("--quick", action="store_true", help="tiny budgets (CI)")
    parser.add_argument("--results", type=Path, default=DEFAULT,
                        help="results dir (default: results)")
    parser.add_argument("--launcher", choices=("basic", "batched"), default=None,
                        help="Hydra launcher (default: batched where installed, else basic)")
    return parser.parse_args(argv)


def main(argv: Optional[list[str]] = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    results = Results(args.results)

    def body() -> dict:
        from rnnexp.study import FULL, QUICK, run_all

        results.root.mkdir(parents=True, exist_ok=True)
        # one writer per results dir, as for rnnexp-reproduce and rnnexp-report
        with results_lock(results.root, PROG):
            return run_all(results, QUICK if args.quick else FULL, args.launcher,
                           command=" ".join([PROG, *argv]))

    summary = guarded(PROG, body, interrupted="run the same command again to continue")
    print_summary(summary, results)


def print_summary(summary: dict, results: Results) -> None:
    from rnnexp.study.validation import param_overrides

    best = summary["validation"]["best"]
    print(f"best: {' '.join(param_overrides(summary['search']['best_params']))}")
    print(f"validation: median {best['median']:g} epochs, {best['converged']}/{best['seeds']} "
          f"converged; outputs in {results.study.resolve()}; "
          f"{summary['wall_time']['total_s']:.0f} s")


if __name__ == "__main__":
    main()
