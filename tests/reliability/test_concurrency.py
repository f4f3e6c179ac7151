"""Two rnnexp-reproduce (or rnnexp-report) processes on one results dir: the second stops at
once with one line (an flock on <results>/.lock, which the kernel drops when its holder dies), and
the first one's results are whole."""
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import run_cli
from rnnexp.results import results_lock

pytestmark = pytest.mark.slow  # every test runs the console scripts

BIN = Path(sys.executable).parent
BUSY = "is running on results dir"


def test_a_held_results_dir_stops_reproduce_and_report_with_one_line(tmp_path, tally):
    results = tmp_path / "results"
    results.mkdir()
    with results_lock(results, "test"):
        for prog, args in (("rnnexp-reproduce", ["--quick", "--only", "q2ii_tuned"]),
                           ("rnnexp-report", [])):
            proc = run_cli(prog, *args, "--results", str(results), cwd=tmp_path)
            lines = proc.stderr.strip().splitlines()
            assert proc.returncode == 2 and len(lines) == 1, proc.stderr
            assert lines[0].startswith(f"{prog}: error: another") and BUSY in lines[0]
            assert f"pid {os.getpid()}" in lines[0]
    assert not list(results.rglob("metrics.json")) and not (results / "runs.csv").exists()
    tally("concurrent", 2)


def test_two_reproductions_at_once_leave_one_whole_result(tmp_path, tally):
    results = tmp_path / "results"
    cmd = [str(BIN / "rnnexp-reproduce"), "--quick", "--seeds", "1", "--only", "q2ii_adagrad",
           "q2ii_tuned", "--results", str(results)]
    first = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    lock = results / ".lock"
    deadline = time.monotonic() + 60
    while not (lock.exists() and lock.read_text().startswith(str(first.pid))):
        assert time.monotonic() < deadline and first.poll() is None
        time.sleep(0.05)
    second = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err[-2000:]
    if second.returncode == 2:  # the usual case: the first still held the dir
        assert BUSY in second.stderr and len(second.stderr.strip().splitlines()) == 1
    else:  # the first had already finished: the second found every run done
        assert second.returncode == 0 and "0 runs trained" in second.stdout
    runs = pd.read_csv(results / "runs.csv")
    assert len(runs) == 4 and not runs.run_dir.duplicated().any()
    assert "4 runs trained" in out
    tally("concurrent")
