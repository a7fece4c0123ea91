"""The code style is enforced: ruff's lint and format (pyproject.toml), over the package, tests, benchmarks,
deploy scripts and the notebooks' code cells."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["lint", "format"])
def test_ruff_is_clean(command):
    result = subprocess.run([sys.executable, "-m", "ruff", *command, "."], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, (
        f"ruff {' '.join(command)} (arréglalo con `ruff check --fix .` y `ruff format .`):\n"
        + (result.stdout + result.stderr)
    )
