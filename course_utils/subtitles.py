"""Subtitles from a transcription: SRT, WebVTT, plain text and JSON, written with openai-whisper's own writers."""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

from course_utils.errors import CourseError, OptionError

FORMATS = ("srt", "vtt", "json", "txt")


def as_whisper_result(transcript) -> dict:
    """A course Transcript as the dict openai-whisper's `transcribe` returns (what its writers read).

    Segments without text are left out (a cue needs text). Whisper's writers read the words of every
    segment or of none: when some segment has timed words, one that has none (its alignment failed)
    counts as a single word that lasts the whole segment.
    """
    spoken = [seg for seg in transcript.segments if seg.text.strip()]
    with_words = any(seg.words for seg in spoken)
    segments = []
    for i, seg in enumerate(spoken):
        raw = {"id": i, "start": seg.start, "end": seg.end, "text": " " + seg.text}
        if with_words:
            words = [(w.text, w.start, w.end, w.probability) for w in seg.words] or [
                (" " + seg.text, seg.start, seg.end, float("nan"))
            ]
            raw["words"] = [dict(zip(("word", "start", "end", "probability"), w)) for w in words]
        segments.append(raw)
    return {"text": transcript.text, "segments": segments, "language": transcript.language}


def subtitles(transcript, fmt: str = "srt", max_line_width: int | None = None) -> str:
    """The text of a subtitle file for `transcript`: fmt is "srt", "vtt", "json" or "txt".

    SRT and VTT come from openai-whisper's writers (whisper.utils.get_writer), one cue per segment;
    with word timestamps and `max_line_width`, cues are cut into lines of at most that many characters.
    JSON is the whole transcription (segments, words, confidences), readable (UTF-8, indented).
    """
    fmt = _check_format(fmt)
    if fmt == "json":
        return json.dumps(_as_json(transcript), ensure_ascii=False, indent=2) + "\n"
    from whisper.utils import get_writer  # heavy (torch): only when writing

    writer = get_writer(fmt, ".")
    # Cues of at most two lines of max_line_width characters (the usual rule for subtitles).
    options = {"max_line_width": max_line_width, "max_line_count": 2 if max_line_width else None}
    if max_line_width and not any(seg.words for seg in transcript.segments):
        raise OptionError(
            "Para cortar los subtítulos en líneas hacen falta los tiempos de cada palabra.",
            "Transcribe con word_timestamps=True.",
        )
    text = io.StringIO()
    writer.write_result(as_whisper_result(transcript), file=text, options=options)
    return text.getvalue()


def write_subtitles(transcript, path, fmt: str | None = None, max_line_width: int | None = None) -> Path:
    """Write `transcript` to `path` (the format from its extension unless `fmt` says it); returns the path."""
    path = Path(path)
    fmt = _check_format(fmt or path.suffix.lstrip(".") or "srt")
    try:
        path.write_text(subtitles(transcript, fmt, max_line_width), encoding="utf-8")
    except OSError as exc:
        raise CourseError(
            f"No pude escribir «{path}» ({exc.strerror or type(exc).__name__}).",
            "Comprueba que la carpeta existe y que puedes escribir en ella.",
        ) from None
    return path


def _check_format(fmt: str) -> str:
    fmt = str(fmt).lower()
    if fmt not in FORMATS:
        raise OptionError(f"No sé escribir subtítulos en formato «{fmt}».", f"Usa uno de: {', '.join(FORMATS)}.")
    return fmt


def _as_json(transcript) -> dict:
    fields = ("text", "language", "model", "backend", "duration")
    data = {name: getattr(transcript, name) for name in fields}
    data["segments"] = [_finite(dataclasses.asdict(seg)) for seg in transcript.segments]
    return data


def _finite(value):
    """NaN (a confidence a backend did not give) is not JSON: it becomes null."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value
