"""Reading and writing the course's own files safely on a shared server.

Writes go to a temporary file created exclusively in the same folder (never through a file or link
someone else put there), then take their final name in one step; if anything fails, the temporary file
is removed and nothing truncated is left. Reads take regular files only (never a FIFO, a device or
/dev/zero), up to a size limit. The operating system's reasons are said in Spanish.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile
from pathlib import Path

# The operating system's reasons a student may meet, in Spanish (its own texts are in English).
_REASONS = {
    errno.ENOSPC: "no queda espacio en el disco",
    errno.EDQUOT: "has llegado al límite de tu cuota de disco",
    errno.EFBIG: "el archivo supera el tamaño máximo permitido",
    errno.EROFS: "el disco es de solo lectura",
    errno.EACCES: "no tienes permiso",
    errno.EPERM: "no tienes permiso",
    errno.ENOENT: "no existe",
    errno.ENOTDIR: "una parte de la ruta no es una carpeta",
    errno.EISDIR: "es una carpeta",
    errno.EEXIST: "ya existe",
    errno.ENAMETOOLONG: "el nombre es demasiado largo",
    errno.EIO: "error de entrada/salida del disco",
}


def reason(exc: BaseException) -> str:
    """Why an operation on a file failed, in a few Spanish words."""
    if isinstance(exc, ValueError) and "null" in str(exc):
        return "la ruta contiene un carácter nulo (\\0)"
    if isinstance(exc, OSError) and exc.errno in _REASONS:
        return _REASONS[exc.errno]
    if isinstance(exc, OSError) and exc.errno:
        return f"error del sistema {errno.errorcode.get(exc.errno, exc.errno)}"
    return f"error {type(exc).__name__}"


def write_text(path: Path, text: str, *, exclusive: bool) -> None:
    """Write `text` as `path` through a temporary file created exclusively beside it; with `exclusive`,
    raise FileExistsError instead of replacing an existing `path`. On failure nothing is left behind."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        if exclusive:
            os.link(temporary, path)  # fails if `path` exists: never overwrites
        else:
            os.replace(temporary, path)
    finally:
        if os.path.lexists(temporary):
            os.unlink(temporary)


class NotRegular(OSError):
    """The path is a FIFO, a device, a socket…: reading it could block or never end."""


class TooBig(OSError):
    """The file is larger than the caller accepts."""


def read_bytes(path: str | os.PathLike, limit: int) -> bytes:
    """The content of the regular file `path`, at most `limit` bytes; raises NotRegular or TooBig
    (besides the usual OSError) without ever blocking on a FIFO or reading a device."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # O_NONBLOCK: opening a FIFO does not wait for a writer
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotRegular(f"not a regular file: {path}")
        if info.st_size > limit:
            raise TooBig(f"{info.st_size} bytes")
        with os.fdopen(fd, "rb", closefd=False) as file:
            data = file.read(limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:  # it grew while being read
        raise TooBig(f"more than {limit} bytes")
    return data


def is_regular(path: str | os.PathLike) -> bool:
    """Whether `path` is a regular file (following links), without opening it."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def build_folder(folder: Path, build) -> Path:
    """Fill `folder` with `build(temporary)` in a folder beside it, then rename it into place: a reader never
    sees half a folder, and when another process finishes first, its folder is kept."""
    tmp = folder.with_name(f"{folder.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        build(tmp)
        shutil.rmtree(folder, ignore_errors=True)
        try:
            tmp.rename(folder)
        except OSError:  # another process finished first
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder
