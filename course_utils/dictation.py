"""Dictation for the chat: a recording becomes text for the student to review before sending."""

from __future__ import annotations

from course_utils import config
from course_utils.display import standin_notice
from course_utils.errors import AudioError


def dictate(audio: bytes, language: str = "es") -> tuple[str, str]:
    """Whisper's text for a recording in `language`, and a warning if a stand-in model wrote it."""
    from course_utils import speech  # Whisper and torch load only when first needed

    result = speech.transcribe(audio, language=language)
    text = result.text.strip()
    if not text:
        raise AudioError(
            "Whisper no reconoció ninguna palabra en la grabación.",
            "Habla más cerca del micrófono y vuelve a grabar, o escribe la pregunta.",
        )
    return text, standin_warning(result)


def standin_warning(transcript) -> str:
    note = getattr(transcript, "standin", None)
    if not note and (raw := config.standin_note(config.whisper_model())):
        note = f"modelo de prueba: {raw}"
    return f" {standin_notice(note)}" if note else ""
