"""rnnexp-reproduce: every sweep of the report and the fastest-convergence study, then the report,
into ./results/ (or --results). Resumable: what is done is not trained again."""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Optional

from rnnexp.cli import (OneLineParser, add_launcher_option, add_results_option, guarded,
                        positive_int)
from rnnexp.results import Results, results_lock

PROG = "rnnexp-reproduce"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = OneLineParser(prog=PROG,
                           description="Run every sweep of the report, then build the report.")
    parser.add_argument("--seeds", type=positive_int, default=None,
                        help="seeds per setting (default: each sweep's own, 20; --quick: 2)")
    parser.add_argument("--quick", action="store_true",
                        help="a tenth of the epochs and fewer seeds: for CI and a first look")
    add_results_option(parser)
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these sweeps")
    parser.add_argument("--jobs", type=positive_int, default=min(2, os.cpu_count() or 1),
                        help="sweeps run at the same time (default: 2, or 1 on one core)")
    add_launcher_option(parser)
    return parser.parse_args(argv)


def reproduce_main(argv: Optional[list[str]] = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    start = time.perf_counter()

    def body():
        from rnnexp.report import ensure_writable
        from rnnexp.reproduce import Options, plan_steps, reproduce
        from rnnexp.runner import resolve_launcher

        launcher = resolve_launcher(args.launcher)
        opts = Options(Path(args.results), args.seeds, args.quick, args.only, launcher, args.jobs)
        steps = plan_steps(opts)  # unknown names fail here, before anything is written
        ensure_writable(opts.results)
        with results_lock(opts.results, PROG):
            return opts, *reproduce(opts, steps, argv)

    opts, outcome, ctx = guarded(PROG, body, interrupted="finished runs are kept, run the same "
                                                         "command again to continue")
    for p in ctx.collection.problems:
        print(f"{PROG}: warning: skipped {p}", file=sys.stderr)
    for failure in outcome.failures:
        print(f"{PROG}: failed: {failure}", file=sys.stderr)
    print(f"{outcome.trained} runs trained, {outcome.done_before} done before, "
          f"{len(outcome.failures)} failed; report: {Results(opts.results).report}; "
          f"took {time.perf_counter() - start:.1f} s (launcher: {opts.launcher})")
    if outcome.failures:
        sys.exit(1)


if __name__ == "__main__":
    reproduce_main()
