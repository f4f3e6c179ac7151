"""The results dir: its layout, the lock that keeps one writer per dir, and what a run leaves
behind (atomic files; a run is finished when its metrics.json is whole)."""
from rnnexp.results.files import (HISTORY, METRICS, REQUIRED_METRICS, NotFinished, atomic_path,
                                  atomic_write_bytes, atomic_write_text, count_finished, json_safe,
                                  read_done, read_metrics, write_if_changed, write_run)
from rnnexp.results.layout import DEFAULT, Results
from rnnexp.results.lock import ResultsBusy, flocked, lock_held_by_parent, results_lock

__all__ = ["DEFAULT", "HISTORY", "atomic_path", "METRICS", "REQUIRED_METRICS", "NotFinished", "Results",
           "ResultsBusy", "atomic_write_bytes", "atomic_write_text", "count_finished", "flocked", "json_safe",
           "lock_held_by_parent", "read_done", "read_metrics", "results_lock", "write_if_changed",
           "write_run"]
