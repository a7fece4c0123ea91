"""The conversation without widgets, and the streaming Markdown renderer."""

import json
import os
import threading

import pytest

from course_utils import chat_store
from course_utils.answer_stats import AnswerStats
from course_utils.conversation import Conversation, Message
from course_utils.errors import Cancelled, CourseError, ExportError, StreamCut
from course_utils.safe_html import MarkdownBlocks, render_markdown
from tests.ollama_double import PREFIX


def test_a_conversation_answers_in_plain_python(ollama_double):
    conversation = Conversation("llama3.2-vision", temperature=0.1)
    pieces = []
    answer = conversation.answer(Message("user", "Hola"), on_piece=pieces.append)
    assert answer.content.startswith(PREFIX) and "".join(pieces) == answer.content
    assert [m.role for m in conversation.history] == ["user", "assistant"]
    assert ollama_double.chats()[-1]["options"]["temperature"] == pytest.approx(0.1)


def test_a_cut_answer_stays_in_the_history_and_the_error_is_raised(ollama_double):
    ollama_double.replies.append("uno dos tres cuatro cinco")
    ollama_double.cut_after_chunks = 2
    conversation = Conversation("llama3.2-vision")
    with pytest.raises(StreamCut):
        conversation.answer(Message("user", "Corta"))
    question, answer = conversation.history
    assert question.content == "Corta" and answer.content == "uno dos " and answer.interrupted


def test_a_cancel_before_the_first_word_keeps_the_question(ollama_double):
    ollama_double.hang = True
    cancel = threading.Event()
    conversation = Conversation("llama3.2-vision")
    threading.Thread(target=lambda: ollama_double.hanging.wait(10) and cancel.set(), daemon=True).start()
    answer = conversation.answer(Message("user", "¿Hola?"), cancel=cancel)
    assert answer.stopped and answer.content == "" and conversation.history[0].content == "¿Hola?"
    assert ollama_double.disconnected.wait(10)
    assert not isinstance(answer, Cancelled)


TEXTS = [
    "a\n\nb",
    "- a\n- b\n\nc",
    "```\nx\n\ny\n```\n\nz",
    "# T\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\nfin",
    "1. uno\n2. dos\n\n   sigue\n\notro",
    "texto **negrita\n\nsigue**",
    "~~~py\n\n\n~~~\n\nfin\n\n> cita\n\nmás",
    "    código\n\n    más código\n\nfin",
    "Párrafo\n\n![gato](https://x.example/g.png)\n\n`a\n\nb`",
]


@pytest.mark.parametrize("text", TEXTS)
def test_markdown_rendered_while_streaming_ends_as_the_whole_text_rendered_at_once(text):
    blocks = MarkdownBlocks()
    for end in range(1, len(text) + 1):  # one character at a time, the hardest stream
        blocks.render(text[:end])
    assert blocks.render(text) == render_markdown(text)


def test_markdown_blocks_start_again_when_the_text_is_not_a_continuation():
    blocks = MarkdownBlocks()
    blocks.render("uno\n\ndos\n\ntres")
    assert blocks.render("otra\n\ncosa") == render_markdown("otra\n\ncosa")


# --- statistics -------------------------------------------------------------------------------------

# Ollama's documented example (docs.ollama.com/api/usage), nanoseconds.
OLLAMA_EXAMPLE = {
    "total_duration": 174560334,
    "load_duration": 101397084,
    "prompt_eval_count": 11,
    "prompt_eval_duration": 13074791,
    "eval_count": 18,
    "eval_duration": 52479709,
}


def test_statistics_are_derived_from_ollamas_fields():
    stats = AnswerStats.from_ollama(OLLAMA_EXAMPLE)
    assert stats.tokens_per_second == pytest.approx(18 / 0.052479709)
    assert stats.time_to_first_token == pytest.approx(0.101397084 + 0.013074791)
    assert stats.load_seconds == pytest.approx(0.101397084)
    assert stats.summary() == "343,0 tokens/s · primer token en 0,11 s · carga del modelo 0,10 s · 18 tokens"
    data = stats.to_dict()
    assert {k: data[k] for k in OLLAMA_EXAMPLE} == OLLAMA_EXAMPLE  # Ollama's own figures, untouched
    assert data["tokens_per_second"] == pytest.approx(343.0, abs=0.1)


def test_missing_or_odd_statistics_give_no_invented_figure():
    stats = AnswerStats.from_ollama({"eval_count": 5, "eval_duration": 0, "load_duration": "x", "total_duration": -1})
    assert stats.tokens_per_second is None and stats.time_to_first_token is None and stats.load_seconds is None
    assert stats.summary() == "5 tokens"
    assert AnswerStats.from_ollama({}).summary() == ""


def test_a_finished_answer_keeps_its_statistics_and_a_stopped_one_has_none(ollama_double):
    conversation = Conversation("llama3.2-vision")
    answer = conversation.answer(Message("user", "Hola"))
    assert answer.stats.eval_count == len(answer.content.split(" ")) and answer.stats.tokens_per_second > 0
    ollama_double.hang = True
    cancel = threading.Event()
    threading.Thread(target=lambda: ollama_double.hanging.wait(10) and cancel.set(), daemon=True).start()
    assert conversation.answer(Message("user", "¿Sigues?"), cancel=cancel).stats is None


def test_statistics_travel_in_both_exports(ollama_double):
    conversation = Conversation("llama3.2-vision")
    conversation.answer(Message("user", "Hola"))
    answer = conversation.to_json()["messages"][1]
    assert answer["stats"]["eval_count"] > 0 and answer["stats"]["tokens_per_second"] > 0
    assert "*Estadísticas: " in conversation.to_markdown() and "tokens/s" in conversation.to_markdown()


# --- replaced turns ---------------------------------------------------------------------------------


def test_a_replaced_turn_stays_in_the_history_and_exports_but_is_not_sent(ollama_double):
    conversation = Conversation("llama3.2-vision")
    conversation.answer(Message("user", "Primera"))
    first = conversation.replace_last()
    assert first.content == "Primera" and all(m.replaced for m in conversation.history)
    conversation.answer(Message("user", "Primera, mejor dicha"))
    sent = ollama_double.chats()[-1]["messages"]
    assert [m["content"] for m in sent if m["role"] == "user"] == ["Primera, mejor dicha"]
    assert [m.content for m in conversation.history][::2] == ["Primera", "Primera, mejor dicha"]
    data = conversation.to_json()["messages"]
    assert [m.get("replaced", False) for m in data] == [True, True, False, False]
    markdown = conversation.to_markdown()
    assert "*(pregunta sustituida)*" in markdown and "*(respuesta sustituida)*" in markdown


def test_nothing_to_replace_is_said_in_spanish():
    with pytest.raises(CourseError, match="Aún no hay ninguna pregunta"):
        Conversation("llama3.2-vision").replace_last()


def test_a_conversation_comes_back_whole_from_its_json(ollama_double, samples):
    conversation = Conversation("llama3.2-vision", temperature=0.3, system="Sé breve.")
    conversation.answer(Message("user", "¿Qué es?", [(samples / "gato.jpg").read_bytes()]))
    conversation.replace_last()
    ollama_double.replies.append("uno dos tres")
    ollama_double.cut_after_chunks = 1
    with pytest.raises(StreamCut):
        conversation.answer(Message("user", "Otra vez"))
    data = json.loads(json.dumps(conversation.to_json()))
    back = Conversation.from_json(data)
    assert (back.model, back.temperature, back.system) == ("llama3.2-vision", 0.3, "Sé breve.")
    assert back.history == conversation.history  # text, images, stopped/interrupted/replaced, statistics


# --- autosave and restore ---------------------------------------------------------------------------


def test_autosave_keeps_one_file_per_conversation_updated_after_each_turn(ollama_double, tmp_path):
    store, conversation = chat_store.ChatStore(tmp_path), Conversation("llama3.2-vision")
    conversation.answer(Message("user", "Uno"))
    path = store.save(conversation)
    conversation.answer(Message("user", "Dos"))
    assert store.save(conversation) == path
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # replaced whole, nothing left aside
    restored, autosaved = chat_store.load(path)
    assert autosaved and [m.content for m in restored.history][::2] == ["Uno", "Dos"]
    store.start_new()
    assert store.save(Conversation("llama3.2-vision")) != path


def test_saved_names_never_collide_with_each_other_or_with_exports(ollama_double, tmp_path, monkeypatch):
    conversation = Conversation("llama3.2-vision")
    conversation.answer(Message("user", "Hola"))
    autosaves = [chat_store.ChatStore(tmp_path).save(conversation) for _ in range(3)]  # in the same second
    exports = [conversation.export(tmp_path) for _ in range(3)]
    names = [p.name for p in autosaves] + [p.name for pair in exports for p in pair]
    assert len(set(names)) == len(names) == 9
    assert all(md.stem == js.stem for md, js in exports)
    assert all(chat_store.load(p)[1] for p in autosaves)
    assert not any(chat_store.load(js)[1] for _, js in exports)


def test_the_picker_lists_conversations_newest_first_and_skips_other_files(ollama_double, tmp_path):
    conversation = Conversation("llama3.2-vision")
    conversation.answer(Message("user", "Una pregunta\ncon   espacios " + "muy larga " * 10))
    older = chat_store.ChatStore(tmp_path).save(conversation)
    newer = chat_store.ChatStore(tmp_path).save(Conversation("llama3.2-vision"))
    (tmp_path / "notas.json").write_text("[1, 2]", encoding="utf-8")
    (tmp_path / "roto.json").write_text("{", encoding="utf-8")
    os.utime(older, (1_000_000_000, 1_000_000_000))
    found = chat_store.saved(tmp_path)
    assert [s.path for s in found] == [newer, older]
    assert "(sin preguntas) (0 mensajes)" in found[0].label
    assert "Una pregunta con espacios muy larga" in found[1].label and "…" in found[1].label
    assert "(2 mensajes)" in found[1].label and older.name in found[1].label
    assert chat_store.saved(tmp_path / "no-existe") == []


@pytest.mark.parametrize(
    ("content", "phrase"),
    [(None, "No existe"), ("{", "no es una conversación"), ('{"model": "x"}', "no es una conversación")],
)
def test_a_file_that_cannot_be_restored_is_explained(tmp_path, content, phrase):
    path = tmp_path / "c.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(ExportError, match=phrase):
        chat_store.load(path)


def test_an_autosave_that_cannot_be_written_is_explained(ollama_double, tmp_path):
    (tmp_path / "archivo").write_text("x")
    with pytest.raises(ExportError, match="No se pudo guardar la conversación automáticamente"):
        chat_store.ChatStore(tmp_path / "archivo").save(Conversation("llama3.2-vision"))
