"""Notebooks are ordered, open with a title and goals, and are committed without outputs."""

import re
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
CHECKED = "NBVAL_CHECK_OUTPUT"


def test_notebooks_are_numbered_in_order():
    names = [p.name for p in NOTEBOOKS]
    assert names, "no notebooks found"
    assert all(re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", n) for n in names), names
    numbers = [int(n[:2]) for n in names]
    assert numbers == list(range(len(numbers))), f"gaps or duplicates in {names}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_opens_with_title_and_goals(path):
    nb = nbformat.read(path, as_version=4)
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.lstrip().startswith("# "), "first cell must be a # title"
    intro = "\n".join(c.source for c in nb.cells[:3] if c.cell_type == "markdown").lower()
    assert "objetivos" in intro, "the opening cells must list the learning goals (Objetivos)"
    assert "ejercicio" in "\n".join(c.source for c in nb.cells).lower(), "every notebook ends with exercises"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or CHECKED in cell.source:
            continue
        assert not cell.outputs, f"cell {i} keeps outputs; strip them"
        assert cell.execution_count is None, f"cell {i} keeps an execution count"
