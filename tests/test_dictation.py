"""Dictation never invents: silence and room noise give no text, speech does.

The policy's rules are checked on made-up segments (fast); the chat's path with the stand-in Whisper and
the real voice-activity detector (Silero VAD, shipped inside faster-whisper); and, marked slow, the whole
policy with the real Whisper `base` weights (see test_speech_real_weights.py) on synthesised room noise
and on the course's recorded samples. Its figures go to test-artifacts/dictation_no_speech.txt.
"""

import io
import json
import urllib.error
import wave

import numpy as np
import pytest
import whisper

from course_utils import audio, dictation, speech
from course_utils.chat import ChatWidget
from course_utils.dictation import NoSpeechError, is_heard
from course_utils.samples import sample_path
from course_utils.speech import Segment
from tests.room_noise import ROOM, SAMPLE_RATE, coloured, fan, level

SAMPLE_PATH = sample_path()
SAMPLES = ["hola.wav", "gato.wav", "describe_imagen.wav", "explica_llm.wav"]


def segment(text="Hola", start=0.0, end=2.0, no_speech_prob=0.1, avg_logprob=-0.3) -> Segment:
    return Segment(start, end, text, no_speech_prob=no_speech_prob, avg_logprob=avg_logprob)


def wav_bytes(clip: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes((np.clip(clip, -1, 1) * 32767).astype("<i2").tobytes())
    return buffer.getvalue()


# --- the rules --------------------------------------------------------------------------------------


def test_a_confident_segment_inside_a_voice_region_is_heard():
    assert is_heard(segment(), [(0.0, 1.5)])


@pytest.mark.parametrize("text", ["...", " ♪ ", "¿?", ""])
def test_a_segment_without_words_is_not(text):
    assert not is_heard(segment(text), [(0.0, 2.0)])


def test_whispers_own_silence_rule_needs_both_signs():
    # openai-whisper skips a window when no_speech_prob > 0.6 unless avg_logprob > −1: so do we
    assert not is_heard(segment(no_speech_prob=0.75, avg_logprob=-1.8), [(0.0, 2.0)])
    assert is_heard(segment(no_speech_prob=0.75, avg_logprob=-0.6), [(0.0, 2.0)])  # confident words
    assert is_heard(segment(no_speech_prob=0.54, avg_logprob=-1.2), [(0.0, 2.0)])


def test_a_segment_outside_every_voice_region_is_not_heard():
    assert not is_heard(segment(start=5.0, end=7.0), [(0.0, 4.0)])  # e.g. «Gracias.» in the trailing silence
    assert is_heard(segment(start=3.5, end=7.0), [(0.0, 4.0)])


def test_without_a_detector_whispers_confidence_decides_alone():
    assert is_heard(segment(), None)
    assert not is_heard(segment(no_speech_prob=0.9, avg_logprob=-2.0), None)


def test_a_backend_without_confidence_leaves_it_to_the_detector():
    assert is_heard(Segment(0.0, 2.0, "Hola"), [(0.0, 2.0)])


def test_without_faster_whisper_the_detector_is_skipped(monkeypatch):
    def missing(_clip):
        raise ModuleNotFoundError("No module named 'faster_whisper'")

    monkeypatch.setattr(speech, "speech_regions", missing)
    assert dictation.voice_regions(np.zeros(SAMPLE_RATE, np.float32)) is None


# --- the real detector, the stand-in Whisper, the chat ----------------------------------------------


@pytest.mark.parametrize("name", ["silencio digital", "ruido rosa −30 dBFS", "ventilador −35 dBFS"])
def test_silence_and_noise_raise_no_speech(name):
    with pytest.raises(NoSpeechError, match="No se oyó ninguna voz"):
        dictation.dictate(wav_bytes(ROOM[name]()))


def test_speech_gives_the_models_text(samples):
    text, warning = dictation.dictate((samples / "describe_imagen.wav").read_bytes())
    assert text.strip() and "modelo de prueba" in warning.lower()  # the stand-in says it is one


def test_a_broken_recording_is_still_an_audio_error():
    with pytest.raises(dictation.AudioError) as caught:
        dictation.dictate(b"no es audio")
    assert not isinstance(caught.value, NoSpeechError)


def test_the_chat_writes_nothing_and_says_no_voice_was_heard(ollama_double, tmp_path):
    chat = ChatWidget(export_dir=tmp_path)
    chat.prompt.value = "Lo que ya había"
    chat.recorder._handle_custom_msg({"type": "audio", "mime": "audio/wav"}, [wav_bytes(fan(4, -35))])
    assert chat.wait(60)
    assert chat.prompt.value == "Lo que ya había"
    assert "No se oyó ninguna voz" in chat.pane.children[-1].value
    assert not chat.recorder.disabled


@pytest.mark.parametrize(
    "env",
    [{"COURSE_WHISPER_MODEL": "small"}, {"COURSE_WHISPER_BACKEND": "vosk"}],
    ids=["model-not-downloaded", "bad-backend"],
)
def test_when_whisper_cannot_load_the_chat_says_what_its_user_can_do(ollama_double, tmp_path, monkeypatch, env):
    def no_connection(*args, **kwargs):
        raise urllib.error.URLError(OSError(-3, "Temporary failure in name resolution"))

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # small is not downloaded
    monkeypatch.setattr(whisper, "_download", no_connection)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    chat = ChatWidget(export_dir=tmp_path)
    chat.prompt.value = "Lo que ya había"
    chat.recorder._handle_custom_msg({"type": "audio", "mime": "audio/wav"}, [wav_bytes(speech_like())])
    assert chat.wait(60)
    shown = chat.pane.children[-1].value
    assert "No se puede dictar" in shown and "escribe la pregunta" in shown, shown
    assert "--backend" not in shown and chat.prompt.value == "Lo que ya había" and not chat.recorder.disabled


def speech_like() -> np.ndarray:
    return audio.load_audio(SAMPLE_PATH / "hola.wav")


# --- the real Whisper base weights --------------------------------------------------------------------


@pytest.fixture(scope="module")
def models():
    ct2 = speech.ct2_from_parts()
    return {"whisper": str(speech.whisper_checkpoint_from_ct2(ct2)), "faster-whisper": str(ct2)}


@pytest.fixture(scope="module")
def report(artifacts):
    lines = [
        "Dictado con Whisper base (pesos reales), CPU. VAD: regiones con voz según Silero VAD; "
        "por segmento: (no_speech_prob, avg_logprob, texto). Sin guardas: lo que Whisper escribe con "
        "no_speech_threshold y logprob_threshold desactivados.",
    ]
    yield lines
    (artifacts / "dictation_no_speech.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


def describe(name, clip, backend, heard) -> str:
    segments = [(round(s.no_speech_prob, 3), round(s.avg_logprob, 2), s.text) for s in heard.segments]
    vad = "no usado" if heard.regions is None else [(round(a, 2), round(b, 2)) for a, b in heard.regions]
    return f"{name} (medido {level(clip):.0f} dBFS) [{backend}]: VAD {vad}; segmentos {segments} → {heard.text!r}"


def unguarded(clip, backend, model) -> str:
    off = "logprob_threshold" if backend == "whisper" else "log_prob_threshold"
    result = speech.transcribe(clip, model=model, backend=backend, **{"no_speech_threshold": None, off: None})
    confidence = [(round(s.no_speech_prob, 3), round(s.avg_logprob, 2)) for s in result.segments]
    return f"    sin guardas: {result.text!r} {confidence}"


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["whisper", "faster-whisper"])
@pytest.mark.parametrize("name", list(ROOM))
def test_real_weights_write_nothing_for_silence_and_room_noise(name, backend, models, report):
    clip = ROOM[name]()
    heard = dictation.listen(clip, "es", model=models[backend], backend=backend)
    report.append(describe(name, clip, backend, heard))
    if level(clip) > -100:  # what Whisper alone would have written (digital silence it refuses)
        report.append(unguarded(clip, backend, models[backend]))
    assert heard.regions == [] and heard.text == ""


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["whisper", "faster-whisper"])
@pytest.mark.parametrize("name", ["teclado −35 dBFS", "ventilador −35 dBFS", "ruido rosa −30 dBFS"])
def test_real_weights_without_the_detector_still_write_nothing(name, backend, models, report, monkeypatch):
    """If faster-whisper (the detector's home) were missing, Whisper's confidence and the word rule hold."""
    monkeypatch.setattr(dictation, "voice_regions", lambda _clip: None)
    clip = ROOM[name]()
    heard = dictation.listen(clip, "es", model=models[backend], backend=backend)
    report.append(describe(f"{name}, sin VAD", clip, backend, heard))
    assert heard.text == ""


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["whisper", "faster-whisper"])
def test_real_weights_write_the_speech(backend, models, report, samples):
    references = json.loads((samples / "transcripciones.json").read_text(encoding="utf-8"))
    speech_only = audio.load_audio(samples / "describe_imagen.wav")
    clips = {name: audio.load_audio(samples / name) for name in SAMPLES}
    clips["describe_imagen.wav + 5 s de ventilador"] = np.concatenate([speech_only, fan(5, -35)])
    noise = coloured(len(speech_only) / SAMPLE_RATE, 1, level(speech_only) - 10)
    clips["describe_imagen.wav con ruido rosa a 10 dB SNR"] = speech_only + noise
    for name, clip in clips.items():
        heard = dictation.listen(clip, "es", model=models[backend], backend=backend)
        report.append(describe(name, clip, backend, heard))
        assert heard.regions and heard.kept == [s for s in heard.segments if s.text]  # nothing dropped
        words = set(heard.text.lower().replace(",", " ").replace(".", " ").split())
        reference = references.get(name.split(" ")[0], "").lower()
        assert len(words & set(reference.replace(",", " ").replace(".", " ").split())) >= len(words) / 2
