"""docs/arquitectura.md names every module of course_utils, and only modules that exist."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "arquitectura.md"
PACKAGE = ROOT / "course_utils"


def rooms_table() -> str:
    text = DOC.read_text(encoding="utf-8")
    return text[text.index("## Las habitaciones") : text.index("## Las capas")]


def named_in_doc() -> set[str]:
    return set(re.findall(r"`([a-z_]+(?:\.(?:js|css))?)`", rooms_table()))


def in_tree() -> set[str]:
    modules = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    front_end = {p.name for p in PACKAGE.iterdir() if p.suffix in (".js", ".css")}
    return modules | front_end


def test_every_module_has_a_room():
    assert in_tree() - named_in_doc() == set(), "añade el módulo a su habitación en docs/arquitectura.md"


def test_the_doc_names_no_module_that_is_gone():
    assert named_in_doc() - in_tree() == set(), "quita de docs/arquitectura.md lo que ya no existe"
