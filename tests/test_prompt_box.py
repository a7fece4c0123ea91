"""The chat's text area from Python: images pasted or dropped in the browser arrive as messages with buffers.

The browser side (the paste and drop events themselves) is in tests/test_browser_input.py.
"""

import io

import pytest
from PIL import Image

from course_utils.chat import ChatWidget
from course_utils.prompt_box import MAX_IMAGE_BYTES, PromptBox


def image_message(data: bytes, name: str = "captura.png", count: int = 1) -> tuple[dict, list]:
    return {"type": "image", "name": name, "mime": "image/png", "size": len(data), "count": count}, [data]


@pytest.fixture
def chat(ollama_double, tmp_path):
    widget = ChatWidget(export_dir=tmp_path)
    yield widget
    widget.stop()
    widget.wait(10)


def test_submit_still_sends_the_text():
    box, got = PromptBox(), []
    box.on_submit(got.append)
    box._handle_custom_msg({"type": "submit", "value": "Hola"}, [])
    assert got == ["Hola"] and box.value == "Hola"


def test_image_bytes_reach_the_callback():
    box, got, errors = PromptBox(), [], []
    box.on_image(got.append, errors.append)
    box._handle_custom_msg(*image_message(b"\x89PNG..."))
    box._handle_custom_msg({"type": "submit", "value": "no es una imagen"}, [])
    assert got == [b"\x89PNG..."] and errors == []


def test_pasted_image_is_previewed_and_sent_with_the_question(chat, ollama_double, samples):
    data = (samples / "gato.jpg").read_bytes()
    chat.prompt._handle_custom_msg(*image_message(data, "image.png"))
    assert chat._attachment.layout.display == "flex" and chat.preview.value
    assert "Imagen adjunta" in chat.status.value
    chat.send("¿Qué ves?")
    assert chat.wait(20)
    sent = ollama_double.chats()[-1]["messages"][-1]
    assert len(sent["images"]) == 1 and chat._attachment.layout.display == "none"


def test_a_new_image_replaces_the_attached_one(chat, ollama_double, samples):
    """One image per message: llama3.2-vision's limit (Ollama: «vision model only supports a single image
    per message»)."""
    chat.prompt._handle_custom_msg(*image_message((samples / "gato.jpg").read_bytes()))
    chat.prompt._handle_custom_msg(*image_message((samples / "cafe.jpg").read_bytes()))
    chat.send("¿Y esta?")
    assert chat.wait(20)
    assert len(ollama_double.chats()[-1]["messages"][-1]["images"]) == 1
    assert Image.open(io.BytesIO(chat.history[0].images[0])).size == Image.open(samples / "cafe.jpg").size


def test_a_dropped_file_that_is_not_an_image_is_explained_in_spanish(chat):
    chat.prompt._handle_custom_msg(*image_message(b"esto no es una imagen", "notas.txt"))
    last = chat.pane.children[-1].value
    assert "course-error" in last and "«notas.txt»" in last and "no es una imagen" in last
    assert chat._attachment.layout.display == "none" and chat._image is None


def test_an_empty_file_is_explained(chat):
    chat.prompt._handle_custom_msg(*image_message(b"", "vacia.png"))
    assert "vacío" in chat.pane.children[-1].value and chat._image is None


def test_a_file_too_large_for_the_kernel_connection_is_refused_with_the_limit(chat):
    size = MAX_IMAGE_BYTES + 1
    chat.prompt._handle_custom_msg({"type": "image-too-big", "name": "foto.tiff", "size": size, "count": 1}, [])
    last = chat.pane.children[-1].value
    assert "«foto.tiff»: ocupa 8,0 MB" in last and "hasta 8 MB" in last and chat._image is None


def test_several_dropped_files_attach_the_first_image_and_say_so(chat, samples):
    chat.prompt._handle_custom_msg(*image_message((samples / "gato.jpg").read_bytes(), "gato.jpg", count=3))
    assert chat._image is not None
    last = chat.pane.children[-1].value
    assert "3 archivos" in last and "«gato.jpg»" in last and "una imagen por mensaje" in last


def test_the_text_typed_before_the_image_is_kept(chat, samples):
    chat.prompt.value = "Mi pregunta a medias"
    chat.prompt._handle_custom_msg(*image_message((samples / "gato.jpg").read_bytes()))
    assert chat.prompt.value == "Mi pregunta a medias"
