"""Dictation for the chat: a recording becomes text for the student to review before sending.

It never invents: Whisper writes words even for silence or a fan's noise when its own guards are off
(with real `base` weights, pink noise comes out as «No, no, no.» and keyboard clicks as «... ... ...»),
so a recording gives text only if
  1. a voice-activity detector (Silero VAD, shipped with faster-whisper) hears a voice in it, and
  2. among Whisper's segments, some has words, overlaps what the detector heard, and is not one that
     Whisper itself calls silence (no_speech_prob above NO_SPEECH_PROB with avg_logprob below
     MIN_LOGPROB: the rule and thresholds of Whisper's own transcribe).
Otherwise `dictate` raises NoSpeechError, «No se oyó ninguna voz», and the text area gets nothing.
Dictation uses the configured Whisper (COURSE_WHISPER_BACKEND and that backend's model); when it
cannot load, the error says what the chat's user can do (type the question) and how to fix it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from course_utils import config
from course_utils.audio import load_audio
from course_utils.display import standin_notice
from course_utils.errors import AudioError, ConfigError, ModelLoadError

NO_SPEECH_PROB = 0.6  # openai-whisper's no_speech_threshold
MIN_LOGPROB = -1.0  # openai-whisper's logprob_threshold
WORD = re.compile(r"\w")


class NoSpeechError(AudioError):
    """The recording has no voice in it: nothing is written for the student."""

    default_hint = "Comprueba el micrófono y el idioma elegido, habla cerca y vuelve a grabar, o escribe la pregunta."

    def __init__(self, hint: str | None = None):
        super().__init__("No se oyó ninguna voz en la grabación.", hint)


@dataclass
class Heard:
    """What the policy saw: the detector's voice regions (None without a detector), Whisper's segments,
    the ones kept, and their text."""

    regions: list[tuple[float, float]] | None
    segments: list = field(default_factory=list)
    kept: list = field(default_factory=list)
    transcript: object = None

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.kept)


def dictate(audio, language: str = "es") -> tuple[str, str]:
    """Whisper's text for a recording in `language`, and a warning if a stand-in model wrote it.

    Raises NoSpeechError when no voice was heard (see the module's docstring), AudioError when the
    recording cannot be read, and the same ConfigError or ModelLoadError as speech (said for the chat)
    when Whisper cannot load."""
    try:
        heard = listen(audio, language)
    except (ConfigError, ModelLoadError) as exc:
        raise type(exc)(
            f"No se puede dictar: {exc.message}",
            f"De momento, escribe la pregunta en el cuadro de texto. Para dictar: {exc.hint}",
        ) from exc
    if not heard.kept:
        raise NoSpeechError()
    return heard.text, standin_warning(heard.transcript)


def listen(audio, language: str = "es", model: str | None = None, backend: str | None = None) -> Heard:
    """Apply the policy to a recording and say what each step found (`dictate` uses only its text).

    `backend=None` is COURSE_WHISPER_BACKEND's, and `model=None` that backend's configured model."""
    from course_utils import speech  # Whisper and torch load only when first needed

    clip = load_audio(audio, allow_silence=True)  # silence is an answer here, not an error
    regions = voice_regions(clip)
    if regions == []:
        return Heard(regions)
    backend = backend or config.whisper_backend()
    transcript = speech.transcribe(clip, model=model, language=language, backend=backend)
    kept = [s for s in transcript.segments if is_heard(s, regions)]
    return Heard(regions, transcript.segments, kept, transcript)


def voice_regions(clip) -> list[tuple[float, float]] | None:
    """Where the voice-activity detector hears a voice; None when faster-whisper (its home) is missing."""
    from course_utils import speech

    try:
        return speech.speech_regions(clip)
    except ImportError:  # faster-whisper or its onnxruntime missing: Whisper's own confidence decides alone
        return None


def is_heard(segment, regions: list[tuple[float, float]] | None) -> bool:
    """A segment with words, that Whisper does not call silence and that overlaps a voice region."""
    if not WORD.search(segment.text):
        return False  # «...», «♪»: what Whisper writes for noise
    if whisper_calls_silence(segment):
        return False
    return regions is None or any(start < segment.end and segment.start < end for start, end in regions)


def whisper_calls_silence(segment) -> bool:
    prob, logprob = segment.no_speech_prob, segment.avg_logprob
    if math.isnan(prob) or math.isnan(logprob):
        return False  # a backend that gives no confidence leaves the decision to the detector
    return prob > NO_SPEECH_PROB and logprob < MIN_LOGPROB


def standin_warning(transcript) -> str:
    note = getattr(transcript, "standin", None)
    if not note and (raw := config.standin_note(config.whisper_model(config.whisper_backend()))):
        note = f"modelo de prueba: {raw}"
    return f" {standin_notice(note)}" if note else ""
