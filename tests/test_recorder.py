"""The microphone widget from Python: language choice, the recording's bytes, the limit, the browser's errors.

The browser side (level meter, clock, stopping at the limit, the selector) is in tests/test_browser_input.py.
"""

import pytest

from course_utils.errors import AudioError, OptionError
from course_utils.recorder import MAX_SECONDS, Recorder


def test_spanish_is_the_default_and_first_language():
    recorder = Recorder()
    assert recorder.language == "es" and recorder.languages[0] == ["es", "español"]
    assert recorder.max_seconds == MAX_SECONDS


def test_another_listed_language_can_be_chosen_and_an_unknown_one_is_explained():
    recorder = Recorder()
    recorder.language = "ca"
    with pytest.raises(OptionError, match="«xx» no está en la lista"):
        recorder.language = "xx"
    assert recorder.language == "ca"


def test_the_recording_reaches_every_callback_with_its_limit_flag():
    recorder, got = Recorder(), []
    recorder.on_audio(lambda data, mime: got.append((data, mime)))
    recorder._handle_custom_msg({"type": "audio", "mime": "audio/webm", "seconds": 60.1, "at_limit": True}, [b"abc"])
    assert got == [(b"abc", "audio/webm")] and recorder.stopped_at_limit
    recorder._handle_custom_msg({"type": "audio", "mime": "audio/webm", "seconds": 2.0, "at_limit": False}, [b"d"])
    assert not recorder.stopped_at_limit


def test_a_browser_failure_becomes_a_spanish_audio_error():
    recorder, errors = Recorder(), []
    recorder.on_error(errors.append)
    recorder._handle_custom_msg({"type": "error", "reason": "NotAllowedError", "detail": ""}, [])
    assert isinstance(errors[0], AudioError) and "permiso" in errors[0].message


def test_the_chat_transcribes_in_the_chosen_language_and_says_when_the_limit_stopped_it(
    ollama_double, tmp_path, samples, monkeypatch
):
    from course_utils import chat as chat_module
    from course_utils.chat import ChatWidget

    asked = []
    monkeypatch.setattr(chat_module, "dictate", lambda audio, language: (asked.append(language), ("hello", ""))[1])
    chat = ChatWidget(export_dir=tmp_path)
    chat.recorder.language = "en"
    message = {"type": "audio", "mime": "audio/wav", "seconds": 60.0, "at_limit": True}
    chat.recorder._handle_custom_msg(message, [(samples / "hola.wav").read_bytes()])
    assert chat.wait(30)
    assert asked == ["en"] and chat.prompt.value == "hello"
    assert "(inglés)" in chat.status.value and "llegó al máximo" in chat.status.value
