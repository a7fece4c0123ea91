"""Conversations that survive a restart of the kernel: autosave after each turn, and the saved ones to
restore.

Each conversation gets its own JSON file in the folder (`conversaciones/` by default), named when it is
first saved and never taken from another conversation or an export; later saves replace it whole
(written aside in a file created exclusively, then renamed), so a crash or a full disk mid-write
leaves the previous version and no truncated file.
"""

from __future__ import annotations

import base64
import binascii
import functools
import itertools
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from course_utils import files
from course_utils.conversation import Conversation
from course_utils.errors import ExportError, ImageError
from course_utils.images import open_image

PREVIEW = 48  # characters of the first question shown in the picker
MAX_SAVED_BYTES = 200_000_000  # a saved conversation carries its images; a bigger file is not one of ours


class ChatStore:
    """Where one conversation at a time is autosaved."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.path: Path | None = None  # the current conversation's file, once it has one

    def save(self, conversation: Conversation) -> Path:
        """Save `conversation` in its file (created at the first save); returns the path."""
        data = {**conversation.to_json(), "autosave": True}
        text = json.dumps(data, ensure_ascii=False, indent=1)
        try:
            if self.path is None:
                self.path = _create(self.folder, f"chat-{datetime.now():%Y%m%d-%H%M%S}", text)
            else:
                _replace(self.path, text)
        except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the folder's name
            raise ExportError(
                f"No se pudo guardar la conversación automáticamente en «{self.folder}» ({files.reason(exc)}).",
                "La conversación sigue aquí: usa Exportar con otra carpeta, o libera espacio.",
            ) from exc
        return self.path

    def start_new(self) -> None:
        """The next save starts a new file (after the conversation is cleared)."""
        self.path = None

    def continue_in(self, path: str | Path) -> None:
        """Keep saving into `path` (a restored conversation goes on in its own file)."""
        self.path = Path(path)


@dataclass(frozen=True)
class Saved:
    path: Path
    label: str


def saved(folder: str | Path) -> list[Saved]:
    """The conversations saved in `folder` (autosaves and exports), newest first, each with a label for
    a picker such as «26/11 16:20 · ¿Qué animal es? (4 mensajes)»."""
    found = []
    try:
        candidates = [path for path in Path(folder).glob("*.json") if files.is_regular(path)]
    except (OSError, ValueError):  # a folder that cannot be listed (or a NUL byte in its name) lists nothing
        return []
    for path in sorted(candidates, key=_modified, reverse=True):
        label = _label(path, _modified(path))
        if label is not None:  # None: not a conversation, the picker shows only what it can open
            found.append(Saved(path, label))
    return found


@functools.lru_cache(maxsize=1024)
def _label(path: Path, modified: float) -> str | None:
    """The picker's label of a saved conversation, read again only when the file changes (they carry
    their images, and the picker is refreshed after every turn)."""
    try:
        messages = json.loads(files.read_bytes(path, MAX_SAVED_BYTES).decode("utf-8"))["messages"]
        first = next((m.get("content", "") for m in messages if m.get("role") == "user"), "")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    first = " ".join(str(first).split())
    first = first if len(first) <= PREVIEW else first[: PREVIEW - 1] + "…"
    when = datetime.fromtimestamp(modified).strftime("%d/%m %H:%M")
    return f"{when} · {first or '(sin preguntas)'} ({len(messages)} mensajes) · {path.name}"


def load(path: str | Path) -> tuple[Conversation, bool]:
    """The conversation saved in `path` (an autosave or an exported JSON), and whether it is an autosave.
    The whole file is checked first (texts, roles, every image), so a bad file changes nothing."""
    path = Path(path)
    try:
        data = json.loads(files.read_bytes(path, MAX_SAVED_BYTES).decode("utf-8"))
        _check_messages(data)
        return Conversation.from_json(data), bool(data.get("autosave"))
    except FileNotFoundError as exc:
        raise ExportError(
            f"No existe la conversación guardada «{path}».",
            "Elige una de la lista «Recuperar» o comprueba el nombre del archivo.",
        ) from exc
    except files.NotRegular as exc:
        raise ExportError(
            f"«{path}» no es un archivo normal (es un dispositivo, una tubería o algo parecido).",
            "Abre un .json de la carpeta conversaciones/.",
        ) from exc
    except files.TooBig as exc:
        raise ExportError(
            f"«{path.name}» es demasiado grande para ser una conversación guardada (más de "
            f"{MAX_SAVED_BYTES // 1_000_000} MB).",
            "Abre un .json de la carpeta conversaciones/ (los guarda el chat después de cada respuesta).",
        ) from exc
    except ImageError as exc:
        raise ExportError(
            f"«{path.name}» tiene una imagen que no se puede abrir: {exc.message}",
            "Abre otra conversación; esta no se ha cargado y la actual sigue aquí.",
        ) from exc
    except OSError as exc:
        raise ExportError(f"No se pudo leer «{path}» ({files.reason(exc)}).") from exc
    except ValueError as exc:
        if "null byte" in str(exc):
            raise ExportError(f"No se pudo leer «{path}» ({files.reason(exc)}).") from exc
        raise _not_a_conversation(path) from exc
    except (KeyError, TypeError, AttributeError) as exc:
        raise _not_a_conversation(path) from exc


class _NotAConversation(ValueError):
    """A saved file whose content is not what the chat saves."""


def _not_a_conversation(path: Path) -> ExportError:
    return ExportError(
        f"«{path.name}» no es una conversación guardada por el chat.",
        "Abre un .json de la carpeta conversaciones/ (los guarda el chat después de cada respuesta).",
    )


def _check_messages(data) -> None:
    """Raise _NotAConversation (or ImageError for an image) unless `data` is what the chat saves."""
    if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
        raise _NotAConversation("messages")
    for message in data["messages"]:
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise _NotAConversation("role")
        if not isinstance(message.get("content"), str) or not isinstance(message.get("images") or [], list):
            raise _NotAConversation("content")
        for image in message.get("images") or []:
            try:
                decoded = base64.b64decode(image, validate=True)
            except (binascii.Error, TypeError, ValueError) as exc:
                raise _NotAConversation("image") from exc
            open_image(decoded, "la imagen guardada")


def _modified(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _create(folder: Path, stem: str, text: str) -> Path:
    """A new file `stem.json` (or `stem-2.json`…) that no export or other conversation uses."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)  # on a shared server, only its student can list it (also if it existed before)
    for n in itertools.count(1):
        name = stem if n == 1 else f"{stem}-{n}"
        if (folder / f"{name}.md").exists():  # an export's pair: leave the name to it
            continue
        try:
            files.write_text(folder / f"{name}.json", text, exclusive=True)  # never overwrites, 0600
        except FileExistsError:
            continue
        return folder / f"{name}.json"


def _replace(path: Path, text: str) -> None:
    files.write_text(path, text, exclusive=False)  # through a private temporary file (0600)
