"""rnnexp-report: rebuild runs.csv, the tables, plots and REPORT.md from existing runs."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

from rnnexp.cli import OneLineParser, add_results_option, guarded
from rnnexp.report import ReportError
from rnnexp.results import Results, results_lock

PROG = "rnnexp-report"


def report_main(argv: Optional[list[str]] = None) -> None:
    parser = OneLineParser(prog=PROG,
                           description="Rebuild tables, plots and REPORT.md from existing runs.")
    add_results_option(parser)
    parser.add_argument("--quick", action="store_true", default=None,
                        help="tables of a --quick reproduction (default: as recorded by it)")
    args = parser.parse_args(argv)
    results = Path(args.results)

    def body():
        from rnnexp.reproduce import build_report

        if not results.is_dir():
            raise ReportError(f"results dir {str(results)!r} does not exist")
        with results_lock(results, PROG):
            return build_report(results, quick=args.quick)

    ctx = guarded(PROG, body)
    for p in ctx.collection.problems:
        print(f"{PROG}: warning: skipped {p}", file=sys.stderr)
    print(f"{len(ctx.collection.runs)} runs -> {Results(results).report}")


if __name__ == "__main__":
    report_main()
