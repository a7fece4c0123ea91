"""Slide metadata for the lessons (RISE, `make slides`): each cell's `slideshow.slide_type`, by rule.

    python scripts/slide_metadata.py                 # writes instructor/source/0*/0*.ipynb
    python scripts/slide_metadata.py --check         # only lists the slides, lesson by lesson

The rules, as a teacher presents a lesson (one idea a slide, the code and its figure appearing as it runs):
1. A markdown cell that starts with `#` or `##` opens a **slide**; one with `###` a **subslide**, except an
   exercise's heading («Ejercicio», «Pregunta abierta», «Experimento abierto», «Tu turno»), which opens a slide.
2. An exercise whose statement has no such heading gets a short «## Tu turno: …» markdown cell before it
   (before the statement when the statement is a cell of its own, else before the answer cell): exercises
   are always on a slide of their own.
3. A code cell is a **fragment** (it appears when the teacher gets to it and runs it), and so is a markdown
   cell without a heading that follows a code cell (the comment on a figure).
4. The exercise's answer cell (nbgrader `solution`) stays on its slide (`-`); its tests (nbgrader `grade`
   code cells, long and for the student's own run) are **skip**ped.
5. A long explanation (a markdown cell of more than `NOTES_LINES` lines, without a heading, that is not an
   exercise's statement) goes to the speaker **notes**: the teacher says it, the slide does not carry it.
6. Everything else continues the slide it is on (`-`).

`HAND` keeps choices made by hand, by lesson and cell id, over the rules (none so far: the rules gave
every lesson a sequence that reads well; `--check` prints it). Running the script again
changes nothing (idempotent); it never changes a cell's source nor its nbgrader metadata.
"""

import argparse
import json
import re
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT / "instructor" / "source"
EXERCISE_HEADING = re.compile(r"^#+\s.*(Ejercicio|Pregunta abierta|Experimento abierto|Tu turno)", re.IGNORECASE)
TU_TURNO = "## Tu turno"
NOTES_LINES = 10
HAND: dict[str, dict[str, str]] = {}


def text(cell):
    source = cell["source"]
    return source if isinstance(source, str) else "".join(source)


def heading_level(cell):
    if cell["cell_type"] != "markdown":
        return 0
    match = re.match(r"^(#+)\s", text(cell))
    return len(match.group(1)) if match else 0


def nbgrader(cell):
    return cell["metadata"].get("nbgrader", {})


def is_solution(cell):
    return bool(nbgrader(cell).get("solution"))


def is_test(cell):
    meta = nbgrader(cell)
    return cell["cell_type"] == "code" and bool(meta.get("grade")) and not meta.get("solution")


def is_exercise_heading(cell):
    return cell["cell_type"] == "markdown" and bool(EXERCISE_HEADING.match(text(cell)))


def tu_turno_title(statement):
    found = re.search(r"(Ejercicio\s+\d+|Pregunta abierta|Experimento abierto)", statement, re.IGNORECASE)
    name = found.group(1) if found else "ejercicio"
    return f"{TU_TURNO}: {name[0].lower()}{name[1:]}"


def tu_turno_cell(statement):
    return {
        "cell_type": "markdown",
        "id": uuid.uuid5(uuid.NAMESPACE_URL, statement).hex[:8],
        "metadata": {"slideshow": {"slide_type": "slide"}},
        "source": [tu_turno_title(statement)],
    }


def add_tu_turno(cells):
    """Inserts «## Tu turno: …» before each exercise without a heading of its own (rule 2)."""
    index = 0
    while index < len(cells):
        if is_solution(cells[index]):
            statement = next((j for j in range(index - 1, -1, -1) if cells[j]["cell_type"] == "markdown"), None)
            if statement is not None and not is_exercise_heading(cells[statement]):
                where = statement if heading_level(cells[statement]) == 0 else index
                context = text(cells[statement]) + text(cells[index])
                if not (where > 0 and is_exercise_heading(cells[where - 1])):
                    cells.insert(where, tu_turno_cell(context))
                    index += 1
        index += 1
    return cells


def slide_type(cells, index):
    cell = cells[index]
    level = heading_level(cell)
    if is_exercise_heading(cell) or level in (1, 2):
        return "slide"
    if level >= 3:
        return "subslide"
    if is_test(cell):
        return "skip"
    if is_solution(cell):
        return "-"
    if cell["cell_type"] == "code":
        return "fragment"
    following = cells[index + 1] if index + 1 < len(cells) else None
    if len(text(cell).splitlines()) > NOTES_LINES and not (following and is_solution(following)):
        return "notes"
    if index > 0 and cells[index - 1]["cell_type"] == "code" and not is_solution(cells[index - 1]):
        return "fragment"
    return "-"


def apply(notebook, lesson):
    cells = add_tu_turno(notebook["cells"])
    by_hand = HAND.get(lesson, {})
    for index, cell in enumerate(cells):
        kind = by_hand.get(cell.get("id"), slide_type(cells, index))
        cell["metadata"]["slideshow"] = {"slide_type": kind}
    return notebook


def slides(notebook):
    """The slides as (kind, title, cells): what the teacher shows, in order."""
    shown = []
    for cell in notebook["cells"]:
        kind = cell["metadata"].get("slideshow", {}).get("slide_type", "-")
        if kind in ("skip", "notes"):
            continue
        if kind in ("slide", "subslide") or not shown:
            title = text(cell).splitlines()[0] if heading_level(cell) else ""
            shown.append((kind, title, []))
        shown[-1][2].append(cell)
    return shown


def sources():
    return sorted(SOURCES.glob("0*/0*.ipynb"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="solo lista las diapositivas, sin escribir")
    args = parser.parse_args(argv)
    for path in sources():
        notebook = json.loads(path.read_text(encoding="utf-8"))
        if not args.check:
            apply(notebook, path.stem)
            path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"\n{path.stem}")
        for kind, title, cells in slides(notebook):
            print(f"  {'·' if kind == 'slide' else '  ↳'} {title or '(sin título)'}  [{len(cells)} celdas]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
