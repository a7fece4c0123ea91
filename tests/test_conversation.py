"""The conversation without widgets, and the streaming Markdown renderer."""

import threading

import pytest

from course_utils.conversation import Conversation, Message
from course_utils.errors import Cancelled, StreamCut
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
