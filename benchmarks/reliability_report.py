"""Run the reliability suite and print the figures for the README's reliability section.

    python benchmarks/reliability_report.py              # default: 3 kill points per kill test
    RNNEXP_KILL_POINTS=20 python benchmarks/reliability_report.py   # the full proof

The counts come from the suite itself (tests/reliability/conftest.py): a case is counted only
once its checks have passed.
"""
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        figures = Path(tmp) / "figures.json"
        env = {**os.environ, "RNNEXP_RELIABILITY_JSON": str(figures)}
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "tests/reliability",
                               *sys.argv[1:]], cwd=ROOT, env=env)
        counts = json.loads(figures.read_text()) if figures.exists() else {}
    kills = os.environ.get("RNNEXP_KILL_POINTS", "3")
    print(f"\nReliability (pytest exit {proc.returncode}; RNNEXP_KILL_POINTS={kills}):")
    print(f"- bad inputs rejected with one line, nothing left behind: {counts.get('bad_inputs', 0)}")
    print(f"- SIGKILLs of the whole process group survived: {counts.get('kill_points', 0)}")
    print(f"- corrupt files named and skipped or repaired: {counts.get('corrupt_files', 0)}")
    print(f"- concurrent-run checks: {counts.get('concurrent', 0)}")
    print(f"- runs/trials lost: {counts.get('lost', 0)}")
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
