"""Tiny models with random weights, saved in the real formats, so the real loading code runs offline.

Their predictions mean nothing; each folder holds a STANDIN.txt that the helpers print.
"""

from __future__ import annotations

from pathlib import Path

from course_utils import files

VERSION = "v2"  # bump when a stand-in changes, so cached copies are rebuilt


def build_vit(folder: Path) -> Path:
    """A 2-layer ViT for 224x224 images and 16x16 patches, with the 1000 ImageNet labels: the course's
    own stand-in (course_utils.standins), with the tests' notice."""
    from course_utils.standins import build_vit as build

    build(folder, "")
    _mark(folder, "ViT diminuto (2 capas, 48 dimensiones) con pesos aleatorios y las 1000 clases de ImageNet")
    return folder


def build_whisper(folder: Path) -> Path:
    """A 2+2-layer multilingual Whisper in the checkpoint format `whisper.load_model(path)` reads: the
    course's own stand-in (course_utils.standins), with the tests' notice."""
    from course_utils.standins import build_whisper as build

    path = build(folder, "")
    _mark(folder, "Whisper diminuto (2+2 capas, 64 dimensiones) con pesos aleatorios: transcribe ruido")
    return path


def _mark(folder: Path, what: str) -> None:
    (folder / "STANDIN.txt").write_text(
        f"Modelo de prueba: {what}. Sus resultados no significan nada.\n", encoding="utf-8"
    )


def build_all(cache: Path) -> dict[str, Path]:
    """Build the stand-ins once into `cache` (reused across test sessions)."""
    root = cache / VERSION
    paths = {"vit": root / "vit", "whisper": root / "whisper" / "whisper-tiny-random.pt"}
    if not (paths["vit"] / "STANDIN.txt").exists():
        files.build_folder(paths["vit"], build_vit)
    if not (paths["whisper"].parent / "STANDIN.txt").exists():
        files.build_folder(paths["whisper"].parent, build_whisper)
    return paths
