"""The sample audio clips and photos that ship with the course (data/samples, see CREDITS.md there)."""

from __future__ import annotations

from pathlib import Path

from course_utils.errors import CourseError

SAMPLES = Path(__file__).resolve().parent.parent / "data" / "samples"


def sample_path(name: str = "gato.jpg") -> Path:
    """Path of one sample file, with a Spanish error listing the ones that exist."""
    path = SAMPLES / name
    if not path.is_file():
        available = ", ".join(sorted(p.name for p in SAMPLES.iterdir() if p.suffix in (".jpg", ".wav")))
        raise CourseError(f"No encuentro la muestra «{name}».", f"Elige una de estas: {available}.")
    return path
