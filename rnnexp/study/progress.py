"""How far the study's steps are: trials finished out of their total and the best value so far,
read from the studies' journal files (each opened once, then only its new records are read:
rnnexp.study.search.open_study)."""
from __future__ import annotations

import logging
import math
from typing import Optional

from rnnexp.results import Results

log = logging.getLogger(__name__)


class StudyWatch:
    """The study being filled most recently among `studies` ({name: n_trials})."""

    def __init__(self, results: Results, studies: dict[str, int]):
        self.results = results
        self.studies = studies

    def line(self) -> Optional[str]:
        """'search: 120/300 trials, best 23' for the study whose journal changed last."""
        journals = [(self.results.journal(n), n) for n in self.studies]
        journals = [(p.stat().st_mtime, n) for p, n in journals if p.exists()]
        if not journals:
            return None
        _, name = max(journals)
        try:
            done, best = self._progress(name)
        except Exception as err:  # noqa: BLE001 - progress is a nicety; never stop the study
            log.debug("no progress for %s: %s", name, err)
            return None
        best_text = "" if best is None else f", best {best:g}"
        return f"{name}: {done}/{self.studies[name]} trials{best_text}"

    def _progress(self, name: str) -> tuple[int, Optional[float]]:
        from optuna.trial import TrialState

        study = self._study(name)
        finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
        values = [t.value for t in finished if t.state == TrialState.COMPLETE
                  and t.value is not None and math.isfinite(t.value)]
        return len(finished), (min(values) if values else None)

    def _study(self, name: str):
        from rnnexp.study.search import open_study

        return open_study(self.results, name)
