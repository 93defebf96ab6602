"""House style is checked like everything else: ruff lint and format (line 88)."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RUFF = Path(sys.executable).with_name("ruff")
PATHS = ["tasks", "tests", "benchmarks"]


def test_ruff_lint_passes():
    proc = subprocess.run(
        [str(RUFF), "check", *PATHS], cwd=REPO, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout[-3000:]


def test_ruff_format_is_applied():
    proc = subprocess.run(
        [str(RUFF), "format", "--check", *PATHS],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
