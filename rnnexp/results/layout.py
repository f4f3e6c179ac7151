"""Every path under a results dir, in one place.

    results/
      REPORT.md  runs.csv  record.jsonl.gz  reproduce.json  .lock  .cache/ (the report's, not committed)
      tables/<sweep>.csv|.md   plots/<sweep>.png
      runs/<sweep>/<job>/            run dirs of the report's tables (runs/quick/<sweep>/ for --quick)
      studies/<study>.log            Optuna journal storage (same name + storage = resume)
      study/                         the fastest-convergence study's small outputs (committed)
      study_runs/<step>/<job>/       the study's run dirs, and study_runs/logs/
      cells/                         the cells study's small outputs (committed)
      cells_runs/<step>/<job>/       its run dirs, and cells_runs/logs/

The study's run dirs are not under runs/: rnnexp-report collects runs/ into runs.csv and matches
it to the report's tables by config, and thousands of search runs do not belong there (the
validation runs of the report's own setting would silently join the Q2(ii) table).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT = Path("results")  # relative to the working directory, never to the install


@dataclass(frozen=True)
class Results:
    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    # ---- what the report writes
    @property
    def report(self) -> Path:
        return self.root / "REPORT.md"

    @property
    def runs_csv(self) -> Path:
        return self.root / "runs.csv"

    @property
    def record(self) -> Path:
        """record.jsonl.gz: every run's config, metrics and loss history (rnnexp.record), so the
        report rebuilds without run dirs."""
        return self.root / "record.jsonl.gz"

    @property
    def manifest(self) -> Path:
        """reproduce.json: how the runs were made (rnnexp-reproduce writes it, the report reads it)."""
        return self.root / "reproduce.json"

    @property
    def lock(self) -> Path:
        return self.root / ".lock"

    @property
    def cache(self) -> Path:
        """.cache/: what a report keeps to be quick on unchanged runs (ignored by git, safe to
        delete)."""
        return self.root / ".cache"

    @property
    def tables(self) -> Path:
        return self.root / "tables"

    @property
    def plots(self) -> Path:
        return self.root / "plots"

    # ---- run dirs
    @property
    def runs(self) -> Path:
        return self.root / "runs"

    def sweep_runs(self, sweep: str, quick: bool = False) -> Path:
        return self.runs / ("quick" if quick else "") / sweep

    def sweep_complete(self, sweep: str, quick: bool = False) -> Path:
        """Written when every command of a sweep succeeded: the commands' fingerprint."""
        return self.sweep_runs(sweep, quick) / ".complete"

    # ---- studies
    @property
    def studies(self) -> Path:
        return self.root / "studies"

    def journal(self, study: str) -> Path:
        return self.studies / f"{study}.log"

    @property
    def study(self) -> Path:
        return self.root / "study"

    @property
    def study_runs(self) -> Path:
        return self.root / "study_runs"

    @property
    def study_logs(self) -> Path:
        return self.study_runs / "logs"

    # ---- the cells study (rnnexp.study.cells)
    @property
    def cells(self) -> Path:
        return self.root / "cells"

    @property
    def cells_runs(self) -> Path:
        return self.root / "cells_runs"

    @property
    def cells_logs(self) -> Path:
        return self.cells_runs / "logs"
