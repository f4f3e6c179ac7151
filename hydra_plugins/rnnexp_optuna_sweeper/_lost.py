"""Jobs a cluster loses. Through hydra-submitit-launcher (hydra/launcher=submitit_slurm) a job
that SLURM cancelled, killed or timed out never returns: submitit's Job.results raises, and the
launcher's batch ends there, every other trial of the batch with it. While the sweeper launches
through submitit, such a job comes back instead as a failed JobReturn holding LostJob; the
sweeper fails its trial (not the study: the trial did nothing wrong) and asks it again with the
same parameters, as it asks again the trials of a dead worker (RetryFailedTrialCallback, at most
max_retry times). The other jobs of the batch are waited for as usual.

submitit learns that a job ended from SLURM's accounting (sacct). On a cluster without it, a job
killed there would be waited for forever; here it counts as ended once squeue no longer lists it
and it wrote no result.
"""
from __future__ import annotations

import logging
import math
import subprocess
import time
from contextlib import contextmanager
from typing import Any, Iterator

from hydra.core.utils import JobReturn, JobStatus


class LostJob(RuntimeError):
    """A job that ended without a result (cancelled, killed, out of time, node lost)."""


def is_submitit(launcher: Any) -> bool:
    return type(launcher).__module__.startswith("hydra_plugins.hydra_submitit_launcher")


def lost_return(reason: str) -> JobReturn:
    ret = JobReturn()
    ret.status = JobStatus.FAILED
    ret._return_value = LostJob(reason)
    return ret


class SchedulerQueue:
    """Which jobs SLURM still holds (squeue, which answers with or without accounting), asked at
    most every `every` seconds."""

    def __init__(self, every: float = 5.0):
        self.every = every
        self._at = -math.inf
        self._ids: set[str] = set()
        self._arrays: set[str] = set()  # arrays with tasks still pending ("12_[3-7]")

    def holds(self, job_id: str) -> bool:
        now = time.monotonic()
        if now - self._at > self.every:
            try:
                out = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True,
                                     text=True, timeout=30, check=True).stdout.split()
            except (OSError, subprocess.SubprocessError):
                return True  # no answer: assume it is there, ask again later
            self._ids = set(out)
            self._arrays = {i.split("_[")[0] for i in out if "_[" in i}
            self._at = now
        return job_id in self._ids or job_id.split("_")[0] in self._arrays


class QuietRepeats(logging.Filter):
    """Lets the first of submitit's "Bypassing sacct error" warnings through (with what rnnexp
    does about it) and drops the repeats: on a cluster without accounting it logs one at every
    poll."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = False

    def filter(self, record: logging.LogRecord) -> bool:
        if "Bypassing sacct error" not in record.getMessage():
            return True
        if self.seen:
            return False
        self.seen = True
        record.msg = (f"{record.getMessage()} (no accounting: rnnexp watches the jobs with squeue "
                      "instead; this is said once)")
        record.args = ()
        return True


QUIET = QuietRepeats()  # one for the process: the warning is said once per sweep, not per batch
GONE_GRACE_S = 15.0  # a job gone from the queue may still be writing its result file


@contextmanager
def lost_jobs_returned(active: bool = True) -> Iterator[None]:
    """Within: submitit's Job.results gives [a failed JobReturn holding LostJob] for a job that
    ended without a result, instead of raising. Where accounting gives no state (UNKNOWN), a job
    that squeue no longer lists and that wrote no result within GONE_GRACE_S counts as ended, so
    a lost job is never waited for forever; submitit's repeated sacct warnings are said once."""
    if not active:
        yield
        return
    from submitit.core import core
    from submitit.core.utils import UncompletedJobError

    original_results, original_done = core.Job.results, core.Job.done
    queue, gone_since = SchedulerQueue(), {}

    def results(self):  # noqa: ANN001, ANN202 - submitit's own signature
        try:
            return original_results(self)
        except UncompletedJobError as err:
            text = " ".join(str(err).split())
            return [lost_return(f"job {self.job_id} lost: {text[:300]}")]

    def done(self, force_check: bool = False) -> bool:  # noqa: ANN001
        if original_done(self, force_check):
            return True
        if self._sub_jobs or self.watcher.get_state(self.job_id, mode="cache") != "UNKNOWN":
            return False  # accounting knows its state (or its tasks are asked one by one)
        if queue.holds(self.job_id):
            gone_since.pop(self.job_id, None)
            return False
        first = gone_since.setdefault(self.job_id, time.monotonic())
        return time.monotonic() - first > GONE_GRACE_S

    # submitit's records go out once, through Hydra's handlers, as every other line of the
    # sweep: its own handlers would print each again in another format
    submitit_log = logging.getLogger("submitit")
    own_handlers, submitit_log.handlers = submitit_log.handlers, []
    submitit_log.addFilter(QUIET)
    core.Job.results, core.Job.done = results, done
    try:
        yield
    finally:
        core.Job.results, core.Job.done = original_results, original_done
        submitit_log.removeFilter(QUIET)
        submitit_log.handlers = own_handlers
