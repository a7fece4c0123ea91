"""Today's Ollama and the seed's model: the kit reads what each model does with images and says, before the
first question, that an Ollama 0.30 or later cannot load llama3.2-vision, with both ways out.

Two releases of the double (tests/ollama_double.py): OLD plays Ollama 0.24.0, the last that loads mllama;
CURRENT plays 0.32.15, which refuses it and serves current vision models. Their catalogues and exact error
bodies come from tests/fixtures/ollama/, taken from Ollama's source at those tags.
"""

from __future__ import annotations

import base64
import html
import io

import httpx
import pytest
from PIL import Image

from course_utils import doctor, llm, prepare_class, vision_models
from course_utils.chat import ChatWidget
from course_utils.conversation import Conversation, Message
from course_utils.errors import (
    ModelNotPulled,
    ModelNotSupported,
    NoVision,
    ServerOutOfMemory,
    TooManyImages,
)
from tests.ollama_double import CURRENT, OLD, OllamaDouble, load_errors
from tests.test_prepare_class import add_pull

QWEN, GEMMA, TEXT_ONLY, LLAMA = "qwen2.5vl:7b", "gemma3:4b", "llama3.2:3b", "llama3.2-vision"
PIN = f"OLLAMA_VERSION={vision_models.MLLAMA_LAST_OLLAMA}"


def both_ways_out(text: str) -> bool:
    return PIN in text and f"ollama pull {vision_models.SUGGESTED_MODEL}" in text and "COURSE_LLM_MODEL=" in text


@pytest.fixture
def current(ollama_release):
    """Today's Ollama (0.32.15) on loopback, as the configured server, with llama3.2-vision as the model."""
    return ollama_release(CURRENT, LLAMA)


@pytest.fixture
def old(ollama_release):
    return ollama_release(OLD, LLAMA)


def photo(width: int = 640, height: int = 480) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 120, 40)).save(buffer, format="JPEG")
    return buffer.getvalue()


def sent_sizes(chat_body: dict) -> list[tuple[int, int]]:
    images = [img for message in chat_body["messages"] for img in message.get("images") or []]
    return [Image.open(io.BytesIO(base64.b64decode(img))).size for img in images]


# --- the double plays each release as its fixtures say -----------------------------------------------------


def test_each_release_says_its_version_and_that_it_is_a_stand_in(old, current):
    assert old.version == "0.24.0-doble" and current.version == "0.32.15-doble"
    assert llm.check_server(LLAMA).version == "0.32.15-doble"


def test_the_current_release_answers_mllama_with_the_real_load_error(current, old):
    body = {"model": LLAMA, "messages": [{"role": "user", "content": "hola"}], "stream": False}
    refused = httpx.post(f"{current.url}/api/chat", json=body, timeout=5)
    expected = load_errors(CURRENT)["unknown_architecture"]
    assert (refused.status_code, refused.json()["error"]) == (expected["status"], expected["error"])
    answered = httpx.post(f"{old.url}/api/chat", json=body, timeout=5)
    assert answered.status_code == 200 and "[doble de pruebas de Ollama]" in answered.json()["message"]["content"]


# --- profiles: what each model does with images ------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "family", "vision", "per_message"),
    [(LLAMA, "mllama", True, 1), (QWEN, "qwen25vl", True, None), (GEMMA, "gemma3", True, None)]
    + [(TEXT_ONLY, "llama", False, 1)],
)
def test_the_profile_is_read_from_api_show(current, model, family, vision, per_message):
    profile = llm.model_profile(model)
    assert (profile.family, profile.vision, profile.images_per_message) == (family, vision, per_message)
    shows = [r for r in current.requests if r.path == "/api/show"]
    llm.model_profile(model)
    assert len([r for r in current.requests if r.path == "/api/show"]) == len(shows), "asked once per server"


def test_a_current_model_takes_several_images_in_one_message(current):
    answer = llm.ask("compara", images=[photo(), photo(300, 200)], model=QWEN)
    assert "Imágenes: JPEG 640×480; JPEG 300×200" in answer
    assert sent_sizes(current.chats()[-1]) == [(640, 480), (300, 200)]


def test_llama_vision_still_takes_one_image_per_message(old):
    with pytest.raises(TooManyImages, match="acepta 1"):
        llm.ask("compara", images=[photo(), photo()])
    assert old.chats() == []


def test_images_are_sized_for_the_models_family(current):
    llm.ask("mira", images=photo(4000, 3000), model=QWEN)
    (width, height) = sent_sizes(current.chats()[-1])[0]
    # more than mllama's 4 tiles of 560 px hold, within Qwen's 4096 tokens of 28×28 px
    assert 4 * 560 * 560 < width * height <= 4096 * 28 * 28
    llm.ask("mira", images=photo(4000, 3000), model=GEMMA)
    assert max(sent_sizes(current.chats()[-1])[0]) <= 2 * 896


def test_an_image_for_a_text_model_is_refused_before_sending(current):
    with pytest.raises(NoVision, match="no ve imágenes"):
        llm.ask("¿qué ves?", images=photo(), model=TEXT_ONLY)
    assert current.chats() == []
    assert "Recibí" in llm.ask("hola", model=TEXT_ONLY)  # text alone still works
    assert current.chats()[-1]["model"] == TEXT_ONLY


# --- every real error body becomes a Spanish error with its fix ---------------------------------------------


CASES = [
    (CURRENT, "unknown_architecture", ModelNotSupported, "OLLAMA_VERSION="),
    (CURRENT, "too_old", ModelNotSupported, "OLLAMA_VERSION="),
    (CURRENT, "too_many_images_chat", TooManyImages, "una sola imagen"),
    (CURRENT, "image_to_text_model", NoVision, "modelo de visión"),
    (CURRENT, "model_not_found_chat", ModelNotPulled, "ollama pull"),
    (CURRENT, "out_of_memory", ServerOutOfMemory, "más pequeña"),
    (OLD, "out_of_memory", ServerOutOfMemory, "más pequeña"),
    (OLD, "too_many_images_chat_pre_0_7", TooManyImages, "una sola imagen"),
]


@pytest.mark.parametrize(("release", "case", "error", "fix"), CASES, ids=[f"{r}-{c}" for r, c, *_ in CASES])
def test_each_real_error_body_is_a_spanish_error_with_its_fix(ollama_double, release, case, error, fix):
    entry = load_errors(release)[case]
    ollama_double.failures.append((entry["status"], entry["error"].replace("<model>", LLAMA)))
    with pytest.raises(error) as raised:
        llm.ask("hola", model=LLAMA)
    assert fix in raised.value.hint or fix in raised.value.message


def test_the_mllama_refusal_names_both_ways_out(current):
    with pytest.raises(ModelNotSupported) as raised:
        llm.ask("hola")
    assert both_ways_out(raised.value.hint)
    assert "0.30" in raised.value.message


# --- before class: check_server, the doctor, prepare_class and the chat -----------------------------------


def test_check_server_refuses_llama_vision_on_a_current_server(current):
    status = llm.check_server()
    assert status.reachable and status.model_pulled and not status.ok
    assert isinstance(status.error, ModelNotSupported) and both_ways_out(status.error.hint)
    assert current.chats() == [], "decided from /api/version and /api/show, before any question"


def test_check_server_is_happy_with_llama_vision_on_the_old_server(old):
    status = llm.check_server()
    assert status.ok and status.error is None and status.profile.family == "mllama"


def test_check_server_is_happy_with_a_current_model_on_a_current_server(current, monkeypatch):
    monkeypatch.setenv("COURSE_LLM_MODEL", QWEN)
    assert llm.check_server().ok


def test_the_doctor_refuses_llama_vision_on_a_current_server_with_both_fixes(current):
    rows = {row.name: row for row in doctor.check_ollama()}
    version = rows["Versión de Ollama"]
    assert version.status == doctor.ERROR and both_ways_out(version.fix)
    assert vision_models.LLAMA_POLICY_URL in rows["Licencia del modelo"].detail
    assert "UE" in rows["Licencia del modelo"].detail


def test_the_doctor_passes_a_current_model_and_says_nothing_of_llamas_licence(current, monkeypatch):
    monkeypatch.setenv("COURSE_LLM_MODEL", QWEN)
    rows = {row.name: row for row in doctor.check_ollama()}
    assert rows["Versión de Ollama"].status == doctor.OK and "Licencia del modelo" not in rows
    assert "ve imágenes" in rows["Modelo de lenguaje"].detail


def test_the_doctor_warns_about_a_text_only_model(current, monkeypatch):
    monkeypatch.setenv("COURSE_LLM_MODEL", TEXT_ONLY)
    row = {row.name: row for row in doctor.check_ollama()}["Modelo de lenguaje"]
    assert row.status == doctor.WARN and "no ve imágenes" in row.detail


def test_the_doctor_on_the_old_server_adds_the_eu_line(old):
    rows = {row.name: row for row in doctor.check_ollama()}
    assert rows["Versión de Ollama"].status == doctor.OK
    assert rows["Licencia del modelo"].status == doctor.INFO


def test_loading_llama_vision_on_a_current_server_fails_with_both_fixes(current):
    with pytest.raises(ModelNotSupported) as raised:
        llm.load_model(LLAMA, current.url)
    assert both_ways_out(raised.value.hint)
    assert llm.load_model(QWEN, current.url) >= 0
    assert [r.body["prompt"] for r in current.requests if r.path == "/api/generate"] == ["", ""]


def test_prepare_class_fails_at_the_load_not_in_class(capsys, tmp_path):
    double = add_pull(OllamaDouble(release=CURRENT, models=[]).start())
    try:
        skips = ["--skip", "whisper", "--skip", "whisper-base", "--skip", "vit"]
        code = prepare_class.main(["--cache-dir", str(tmp_path), "--ollama-host", double.url, "--llm", LLAMA, *skips])
    finally:
        double.stop()
    out = capsys.readouterr().out
    assert code == 1 and "descargado" in out and "no se pudo cargar" in out and both_ways_out(out)
    assert [r.path for r in double.requests if r.method == "POST"][:2] == ["/api/pull", "/api/generate"]


def pane_text(chat: ChatWidget) -> str:
    return html.unescape(" ".join(bubble.value for bubble in chat.pane.children))


def test_the_chat_refuses_llama_vision_on_a_current_server_before_the_first_question(current, tmp_path):
    chat = ChatWidget(export_dir=tmp_path, autosave=False)
    assert both_ways_out(chat.status.value) or both_ways_out(pane_text(chat))
    chat.prompt.value = "¿Qué ves?"
    assert chat.send() is False
    assert chat.prompt.value == "¿Qué ves?", "what the student typed stays"
    assert current.chats() == []


def test_the_chat_marks_models_that_cannot_see_or_cannot_load(current, tmp_path):
    chat = ChatWidget(export_dir=tmp_path, autosave=False)
    labels = dict((value, label) for label, value in chat.model_picker.options)
    assert labels[TEXT_ONLY].endswith("(sin visión)")
    assert labels["llama3.2-vision:latest"].endswith("(no funciona en este Ollama)")
    assert labels[QWEN] == QWEN and labels[GEMMA] == GEMMA


def test_the_chat_keeps_an_image_for_a_text_model_and_says_why(current, tmp_path):
    chat = ChatWidget(model=TEXT_ONLY, export_dir=tmp_path, autosave=False)
    chat.attach_image(photo())
    chat.prompt.value = "¿Qué ves?"
    assert chat.send() is False
    assert chat.prompt.value == "¿Qué ves?" and chat._image is not None
    assert "no ve imágenes" in chat.status.value or "no ve imágenes" in pane_text(chat)
    assert current.chats() == []


def test_a_conversation_keeps_every_image_where_the_model_takes_them(current):
    conversation = Conversation(QWEN)
    for size in ((640, 480), (300, 200)):
        conversation.answer(Message("user", "mira esta", [photo(*size)]))
    conversation.answer(Message("user", "¿cuál era más ancha?"))
    assert sent_sizes(current.chats()[-1]) == [(640, 480), (300, 200)]


def test_a_llama_vision_conversation_sends_only_the_latest_image(old):
    conversation = Conversation(LLAMA)
    for size in ((640, 480), (300, 200)):
        conversation.answer(Message("user", "mira esta", [photo(*size)]))
    conversation.answer(Message("user", "¿cuál era más ancha?"))
    assert sent_sizes(old.chats()[-1]) == [(300, 200)]
