"""Conversations that survive a restart of the kernel: autosave after each turn, and the saved ones to
restore.

Each conversation gets its own JSON file in the folder (`conversaciones/` by default), named when it is
first saved and never taken from another conversation or an export; later saves replace it whole
(written aside, then renamed), so a crash mid-write leaves the previous version.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from course_utils.conversation import Conversation
from course_utils.errors import ExportError

PREVIEW = 48  # characters of the first question shown in the picker


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
        except OSError as exc:
            raise ExportError(
                f"No se pudo guardar la conversación automáticamente en «{self.folder}» ({exc.strerror or exc}).",
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
    for path in sorted(Path(folder).glob("*.json"), key=_modified, reverse=True):
        label = _label(path, _modified(path))
        if label is not None:  # None: not a conversation, the picker shows only what it can open
            found.append(Saved(path, label))
    return found


@functools.lru_cache(maxsize=1024)
def _label(path: Path, modified: float) -> str | None:
    """The picker's label of a saved conversation, read again only when the file changes (they carry
    their images, and the picker is refreshed after every turn)."""
    try:
        messages = json.loads(path.read_text(encoding="utf-8"))["messages"]
        first = next((m.get("content", "") for m in messages if m.get("role") == "user"), "")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    first = " ".join(str(first).split())
    first = first if len(first) <= PREVIEW else first[: PREVIEW - 1] + "…"
    when = datetime.fromtimestamp(modified).strftime("%d/%m %H:%M")
    return f"{when} · {first or '(sin preguntas)'} ({len(messages)} mensajes) · {path.name}"


def load(path: str | Path) -> tuple[Conversation, bool]:
    """The conversation saved in `path` (an autosave or an exported JSON), and whether it is an autosave."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data.get("messages"), list):
            raise KeyError("messages")
        return Conversation.from_json(data), bool(data.get("autosave"))
    except FileNotFoundError as exc:
        raise ExportError(
            f"No existe la conversación guardada «{path}».",
            "Elige una de la lista «Recuperar» o comprueba el nombre del archivo.",
        ) from exc
    except OSError as exc:
        raise ExportError(f"No se pudo leer «{path}» ({exc.strerror or exc}).") from exc
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ExportError(
            f"«{path.name}» no es una conversación guardada por el chat.",
            "Abre un .json de la carpeta conversaciones/ (los guarda el chat después de cada respuesta).",
        ) from exc


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
            _write_private(folder / f"{name}.json", text, os.O_EXCL)  # O_EXCL: never overwrite
        except FileExistsError:
            continue
        return folder / f"{name}.json"


def _replace(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    _write_private(partial, text, os.O_TRUNC)
    os.replace(partial, path)


def _write_private(path: Path, text: str, flag: int) -> None:
    """Write `text` to `path`, readable and writable by its owner only (0600): photos and questions are private."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | flag, 0o600)
    os.fchmod(fd, 0o600)  # a leftover .partial keeps its old mode otherwise
    with open(fd, "w", encoding="utf-8") as file:
        file.write(text)
