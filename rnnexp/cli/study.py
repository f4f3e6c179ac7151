"""rnnexp-study: the fastest-convergence study alone (search, validation on fresh seeds, sampler
comparison) into RESULTS/study/. Resumable: the same command continues where it stopped."""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Optional

from rnnexp.cli import (OneLineParser, add_launcher_option, add_results_option, guarded,
                        positive_int)
from rnnexp.results import Results, results_lock

PROG = "rnnexp-study"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = OneLineParser(
        prog=PROG,
        description="Fastest-convergence study (hidden 5, 'edgement'): search, validation on "
                    "fresh seeds, sampler comparison; outputs in RESULTS/study/.")
    parser.add_argument("--quick", action="store_true", help="tiny budgets (CI)")
    parser.add_argument("--only", choices=["comparison", "cells"],
                        help="run one step alone: the sampler comparison (it needs nothing of "
                             "the search), or the cells study (nn.RNN, nn.GRU and nn.LSTM each "
                             "searched and validated at hidden 5; outputs in RESULTS/cells/)")
    parser.add_argument("--jobs", type=positive_int, default=min(2, os.cpu_count() or 1),
                        help="processes at a time: with 2, the sampler comparison trains in a "
                             "second process beside the search (default: %(default)s)")
    add_results_option(parser)
    add_launcher_option(parser)
    return parser.parse_args(argv)


def main(argv: Optional[list[str]] = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    results = Results(args.results)

    def body() -> dict:
        from rnnexp.runner import Runner, resolve_launcher
        from rnnexp.study import FULL, QUICK, run_all
        from rnnexp.study.run import (Progress, StudyStep, effective_budget, planned_runs,
                                      recorded_summary, study_totals)
        from rnnexp.study.samplers import compare_samplers

        budget = QUICK if args.quick else FULL
        results.root.mkdir(parents=True, exist_ok=True)
        if args.only == "comparison":
            with results_lock(results.root, PROG), warm():
                runner = Runner(resolve_launcher(args.launcher), in_process=True)
                return compare_samplers(results, effective_budget(budget, runner.launcher), runner)
        if args.only == "cells":
            from rnnexp.study import cells

            with results_lock(results.root, PROG):
                launcher = resolve_launcher(args.launcher)
                cell_budget = cells.cells_budget(args.quick)
                if cells.is_done(results, cell_budget, launcher):
                    return cells.recorded(results)
                with progress_bar(cells.planned_runs(cell_budget), "cells") as bar, warm():
                    progress = Progress(results, cells.study_totals(cell_budget), bar.n,
                                        bar.advance, runs=results.cells_runs)
                    runner = Runner(launcher, in_process=True, on_poll=progress.poll)
                    summary = cells.run_cells(results, cell_budget, runner,
                                              command=" ".join([PROG, *argv]))
                    progress.poll(force=True)
                    return summary
        # one writer per results dir, as for rnnexp-reproduce and rnnexp-report
        with results_lock(results.root, PROG):
            launcher = resolve_launcher(args.launcher)
            if StudyStep(results, quick=args.quick).is_done(launcher):
                return recorded_summary(results)  # nothing to train or write: no journal read
            with progress_bar(planned_runs(budget)) as bar:
                progress = Progress(results, study_totals(budget), bar.n, bar.advance)
                # every step in this process: one start-up for the whole study
                runner = Runner(launcher, in_process=True, on_poll=progress.poll)
                summary = run_all(results, budget, runner, command=" ".join([PROG, *argv]),
                                  jobs=args.jobs)
                progress.poll(force=True)
                return summary

    start = time.perf_counter()
    summary = guarded(PROG, body, interrupted="run the same command again to continue")
    if args.only == "comparison":
        took = f"took {time.perf_counter() - start:.1f} s"
        if summary is None:
            print(f"sampler comparison: this process's studies are done, another process trains "
                  f"the rest and writes the files; {took}")
        else:
            print(f"sampler comparison: outputs in {results.study.resolve()}; {took}")
        return
    if args.only == "cells":
        print_cells(summary, results, time.perf_counter() - start)
        return
    print_summary(summary, results, time.perf_counter() - start)


def warm():
    """torch and the training code imported once, here, before the studies start: each study's
    training process is forked from this one (hydra.sweeper.overlap) and would otherwise import
    them anew. Imported before a SIGTERM may interrupt (rnnexp.runner.terminate_as_interrupt)."""
    from rnnexp.runner import terminate_as_interrupt
    from rnnexp.study.run import import_training

    return terminate_as_interrupt(prepare=import_training)


class progress_bar:
    """runs done out of the study's total, and the running study's trials and best value, on the
    terminal (also while a step's own output goes to its log)."""

    def __init__(self, total: int, desc: str = "study"):
        self.total, self.desc = total, desc

    def __enter__(self):
        from tqdm import tqdm

        from rnnexp.runner import console

        self.bar = tqdm(total=self.total, desc=self.desc, unit="run", file=console(),
                        dynamic_ncols=True)
        self.n = 0
        return self

    def advance(self, n: int, note: Optional[str] = None) -> None:
        from rnnexp.runner import advance_bar

        if note:
            self.bar.set_postfix_str(note, refresh=False)
        advance_bar(self.bar, n)

    def __exit__(self, *exc) -> None:
        self.bar.close()


def print_cells(summary: dict, results: Results, seconds: float) -> None:
    from rnnexp.study.cells import CELL_NAMES
    from rnnexp.study.validation import param_overrides

    for model, numbers in summary["validation"].items():
        print(f"{CELL_NAMES[model]}: median {numbers['median']:g} epochs, "
              f"{numbers['converged']}/{numbers['seeds']} converged with "
              f"{' '.join(param_overrides(summary['search'][model]['best_params']))}")
    print(f"outputs in {results.cells.resolve()}; took {seconds:.1f} s")


def print_summary(summary: dict, results: Results, seconds: float) -> None:
    from rnnexp.study.validation import param_overrides

    best = summary["validation"]["best"]
    print(f"best: {' '.join(param_overrides(summary['search']['best_params']))}")
    print(f"validation: median {best['median']:g} epochs, {best['converged']}/{best['seeds']} "
          f"converged; outputs in {results.study.resolve()}; took {seconds:.1f} s")


if __name__ == "__main__":
    main()
