"""Audio as data: decoding any common file to 16 kHz mono float32, and plots."""

from __future__ import annotations

import shutil


def ffmpeg_exe() -> str:
    """The ffmpeg to decode with: the system's if on PATH, else the binary that imageio-ffmpeg ships."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()
