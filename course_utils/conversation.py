"""A conversation with a vision model on Ollama, with no widgets: the history, one streamed answer at a
time that can be stopped, and export to Markdown and JSON. The chat widget shows it; scripts and tests
can use it directly.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from course_utils import files, llm
from course_utils.answer_stats import AnswerStats
from course_utils.errors import Cancelled, CourseError, ExportError

SYSTEM = (
    "Eres un asistente de un curso de modelos multimodales. Responde en español, "
    "de forma clara y breve. Si te dan una imagen, descríbela con precisión."
)


@dataclass
class Message:
    role: str  # "user" or "assistant"
    content: str
    images: list[bytes] = field(default_factory=list)  # JPEG bytes
    stopped: bool = False  # the student pressed Parar before the answer ended
    interrupted: str = ""  # why the answer broke off (server error, cut connection), if it did
    replaced: bool = False  # the turn was regenerated or its question edited: kept, but no longer sent
    stats: AnswerStats | None = None  # what Ollama reported at the end of a finished answer

    def to_dict(self) -> dict:
        data = {
            "role": self.role,
            "content": self.content,
            "images": [base64.b64encode(img).decode("ascii") for img in self.images],
        }
        if self.stopped:
            data["stopped"] = True
        if self.interrupted:
            data["interrupted"] = self.interrupted
        if self.replaced:
            data["replaced"] = True
        if self.stats is not None:
            data["stats"] = self.stats.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Message:
        """The inverse of `to_dict` (a saved or exported conversation)."""
        stats = data.get("stats")
        return cls(
            role=data["role"],
            content=data["content"],
            images=[base64.b64decode(img) for img in data.get("images") or []],
            stopped=bool(data.get("stopped")),
            interrupted=str(data.get("interrupted") or ""),
            replaced=bool(data.get("replaced")),
            stats=AnswerStats.from_ollama(stats) if isinstance(stats, dict) else None,
        )

    @property
    def note(self) -> str:
        """How an unfinished or replaced message is marked in the pane and in exports."""
        notes = []
        if self.stopped:
            notes.append("respuesta detenida")
        elif self.interrupted:
            notes.append("respuesta interrumpida")
        if self.replaced:
            notes.append("respuesta sustituida" if self.role == "assistant" else "pregunta sustituida")
        return ", ".join(notes)


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


class Conversation:
    """The history of a chat and the answers that extend it. Whatever happens to an answer (stopped,
    cut, server error), the question and what arrived stay in the history."""

    def __init__(self, model: str | None = None, temperature: float = 0.7, system: str | None = SYSTEM):
        self.model, self.temperature, self.system = model, temperature, system
        self.history: list[Message] = []
        self._streaming: tuple[Message, list[str]] | None = None  # the question being answered, what arrived

    def for_model(self, question: Message) -> list[dict]:
        """The earlier turns as Ollama receives them, before `question`."""
        # Turns the model never answered, and replaced turns, are kept for the student but not sent.
        pairs = zip(self.history[::2], self.history[1::2])
        answered = [m for asked, answer in pairs if answer.content and not answer.replaced for m in (asked, answer)]
        keep = self._images_kept(question, answered)
        return [
            {"role": m.role, "content": m.content, **({"images": m.images} if id(m) in keep else {})} for m in answered
        ]

    def _images_kept(self, question: Message, earlier: list[Message]) -> set[int]:
        """The earlier messages whose images are sent again: as many of the most recent as the model takes
        in one conversation (Llama 3.2 Vision: one, the question's if it has one), none for a text model."""
        profile = llm.model_profile(self.model)
        with_images = [m for m in earlier if m.images]
        room = len(with_images) if profile.images_per_conversation is None else profile.images_per_conversation
        room = 0 if not profile.vision else max(0, room - (1 if question.images else 0))
        return {id(m) for m in with_images[len(with_images) - room :]} if room else set()

    def answer(
        self,
        question: Message,
        *,
        on_piece: Callable[[str], None] | None = None,
        on_status: Callable[[str], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> Message:
        """Stream the answer to `question`, calling `on_piece` with each piece; setting `cancel` stops it at
        any moment. The question and the answer (whole, partial or empty) join the history; a failure is
        raised after that, with the answer marked as interrupted."""
        received: list[str] = []
        answer = Message("assistant", "")

        def keep_stats(fields: dict) -> None:
            answer.stats = AnswerStats.from_ollama(fields)

        self._streaming = (question, received)
        try:
            for piece in llm.stream(
                question.content,
                images=question.images or None,
                system=self.system,
                history=self.for_model(question),
                model=self.model,
                temperature=self.temperature,
                cancel=cancel,
                on_status=on_status,
                on_stats=keep_stats,
            ):
                received.append(piece)
                if on_piece:
                    on_piece(piece)
        except Cancelled as exc:
            received.append(exc.partial[len("".join(received)) :])
            answer.stopped = True
        except CourseError as exc:
            received.append(getattr(exc, "partial", "")[len("".join(received)) :])
            answer.interrupted = exc.message
            raise
        except Exception as exc:  # a bug must not lose the conversation: keep it, then let the caller show it
            answer.interrupted = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            answer.content = "".join(received)
            self.history += [question, answer]
            self._streaming = None
        return answer

    def _messages(self) -> list[Message]:
        """The history, and the turn being answered if there is one (what arrived of it, marked)."""
        streaming = self._streaming
        if streaming is None:
            return list(self.history)
        question, received = streaming
        partial = Message("assistant", "".join(received), interrupted="la respuesta aún se estaba escribiendo")
        return [*self.history, question, partial]

    def last_turn(self) -> tuple[Message, Message] | None:
        """The last question and its answer, if the conversation has any."""
        return (self.history[-2], self.history[-1]) if len(self.history) >= 2 else None

    def replace_last(self) -> Message:
        """Mark the last turn as replaced (it stays in the history and the exports, and is no longer sent
        to the model) and return its question, to be asked again or edited."""
        turn = self.last_turn()
        if turn is None:
            raise CourseError("Aún no hay ninguna pregunta que repetir o editar.", "Escribe una pregunta y envíala.")
        for message in turn:
            message.replaced = True
        return turn[0]

    def clear(self) -> None:
        self.history = []

    @classmethod
    def from_json(cls, data: dict) -> Conversation:
        """The inverse of `to_json` (an exported or autosaved conversation)."""
        conversation = cls(data.get("model"), float(data.get("temperature", 0.7)), data.get("system"))
        conversation.history = [Message.from_dict(m) for m in data.get("messages", [])]
        return conversation

    def to_json(self) -> dict:
        return {
            "model": self.model,
            "temperature": self.temperature,
            "system": self.system,
            "exported": datetime.now().isoformat(timespec="seconds"),
            "messages": [m.to_dict() for m in self._messages()],
        }

    def to_markdown(self) -> str:
        lines = [
            f"# Conversación con {self.model}",
            "",
            f"Temperatura {self.temperature:.1f} · {datetime.now():%Y-%m-%d %H:%M}",
            "",
        ]
        for message in self._messages():
            lines += [f"## {'Tú' if message.role == 'user' else 'Asistente'}", ""]
            lines += [f"![imagen adjunta]({data_uri(img, 'image/jpeg')})" for img in message.images]
            lines += [message.content + (f" *({message.note})*" if message.note else ""), ""]
            if message.stats is not None and message.stats.summary():
                lines += [f"*Estadísticas: {message.stats.summary()}*", ""]
        return "\n".join(lines)

    def export(self, folder: str | Path) -> tuple[Path, Path]:
        """Save the conversation as Markdown and JSON (images inside, base64); returns both paths.
        An earlier export is never overwritten; a failed export leaves no file behind."""
        if not isinstance(folder, (str, os.PathLike)):
            raise ExportError(
                f"La carpeta para exportar debe ser una ruta (un texto), no {type(folder).__name__}.",
                'Escribe la carpeta entre comillas, por ejemplo export("conversaciones").',
            )
        markdown = self.to_markdown()
        data = json.dumps(self.to_json(), ensure_ascii=False, indent=1)
        return _write_new(Path(folder), f"chat-{datetime.now():%Y%m%d-%H%M%S}", markdown, data)


def _write_new(folder: Path, stem: str, markdown: str, data: str) -> tuple[Path, Path]:
    """Write `stem.md` and `stem.json` in `folder`, adding -2, -3… to the stem if either name exists
    (an autosave may hold the .json of a stem whose .md is free)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for n in itertools.count(1):
            name = stem if n == 1 else f"{stem}-{n}"
            md_path, json_path = folder / f"{name}.md", folder / f"{name}.json"
            try:
                files.write_text(md_path, markdown, exclusive=True)  # never overwrites
            except FileExistsError:
                continue
            try:
                files.write_text(json_path, data, exclusive=True)
            except FileExistsError:
                md_path.unlink()  # ours, written just now: free the name and try the next one
                continue
            except BaseException:
                md_path.unlink()  # a half export is no export
                raise
            return md_path, json_path
    except (FileExistsError, NotADirectoryError) as exc:  # the folder is a file
        raise ExportError(
            f"No se pudo guardar la conversación: «{exc.filename}» no es una carpeta.",
            "Elige una carpeta que exista (o un nombre nuevo) para exportar.",
        ) from exc
    except PermissionError as exc:
        raise ExportError(
            f"No se pudo guardar la conversación: no tienes permiso para escribir en «{folder}».",
            "Elige una carpeta tuya, por ejemplo dentro de tu directorio personal.",
        ) from exc
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the folder's name
        raise ExportError(
            f"No se pudo guardar la conversación en «{folder}» ({files.reason(exc)}).",
            "Comprueba que queda espacio y que la carpeta es accesible, y vuelve a exportar.",
        ) from exc
