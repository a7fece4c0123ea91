"""Audio as data: decoding any common file to 16 kHz mono float32, and plots."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from course_utils import files
from course_utils.errors import AudioError

SAMPLE_RATE = 16_000  # what Whisper expects
WINDOW_SECONDS = 30  # Whisper looks at the audio in 30-second windows
SILENCE_PEAK = 1e-3  # peak amplitude (full scale = 1.0) below which we call a clip silent
MAX_CHANNELS = 8  # a 2-D array with more than this on both axes is not multichannel audio
FLOAT_HEADROOM = 2.0  # float samples may overshoot full scale (±1) up to this; louder is not ±1 audio


def ffmpeg_exe() -> str:
    """The ffmpeg to decode with: the system's if on PATH, else the binary that imageio-ffmpeg ships."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def load_audio(source, allow_silence: bool = False) -> np.ndarray:
    """Any audio (path, raw bytes of any container, or a numpy array) as 16 kHz mono float32, full scale ±1.

    A numpy array is taken as already sampled at 16 kHz:
    - floats are used as they are (full scale is ±1); a loud take may overshoot up to ±FLOAT_HEADROOM,
      and anything beyond that raises AudioError: it is integer samples stored as floats (such as an
      int16 recording after `.astype(float)`), which must be divided by their range (32768 for int16);
    - integers are scaled by their type's range: int16 ÷ 32768, int32 ÷ 2³¹, int8 ÷ 128, and unsigned
      types are centred first (uint8: (x − 128) ÷ 128);
    - a 2-D array is several channels, channels-first (2, n) or channels-last (n, 2), up to
      MAX_CHANNELS; they are averaged to mono.
    Raises AudioError (Spanish message) for empty, silent, corrupt, unreadable or non-audio input;
    with allow_silence=True a silent clip is returned (for code that asks whether there is a voice).
    """
    if isinstance(source, np.ndarray):
        audio = _from_array(source)
    elif isinstance(source, (bytes, bytearray, memoryview)):
        audio = _from_bytes(bytes(source))
    elif isinstance(source, (str, os.PathLike)):
        audio = _decode_file(_existing_file(Path(source)), name=f"«{Path(source).name}»")
    else:
        raise AudioError(
            f"No sé leer audio de un objeto {type(source).__name__}.",
            "Pasa una ruta a un archivo, los bytes del archivo o un array de numpy.",
        )
    return _check_content(audio, allow_silence)


def _from_array(array: np.ndarray) -> np.ndarray:
    audio = np.asarray(array)
    channels = min(audio.shape) if audio.ndim == 2 else 1
    if audio.ndim not in (1, 2) or channels > MAX_CHANNELS or audio.dtype.kind not in "iuf":
        raise AudioError(
            f"El array de audio tiene forma {array.shape} y tipo {array.dtype}.",
            "Pasa un array de una dimensión con las muestras a 16 kHz, o de dos con los canales (2, n) o (n, 2).",
        )
    if audio.dtype.kind in "iu":
        audio = _scale_integers(audio)
    if audio.ndim == 2:  # average the channel axis, the short one
        audio = audio.mean(axis=0 if audio.shape[0] < audio.shape[1] else 1)
    audio = audio.astype(np.float32)
    if not np.all(np.isfinite(audio)):
        raise AudioError("El audio contiene valores no válidos (NaN o infinito).", "Revisa cómo se generó el array.")
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak > FLOAT_HEADROOM:
        raise AudioError(
            f"Un audio con decimales debe ir de -1 a 1, y este llega a {peak:.6g}: parecen "
            "muestras enteras guardadas como decimales.",
            "Si venía de int16, divídelo entre 32768 (`array / 32768`) o pásalo tal cual como "
            "int16; si no, normalízalo con `array / np.abs(array).max()`.",
        )
    return audio


def _scale_integers(audio: np.ndarray) -> np.ndarray:
    """PCM integers to [-1, 1): divide by half the type's range, after centring unsigned types."""
    info = np.iinfo(audio.dtype)
    half = (float(info.max) - float(info.min) + 1) / 2
    centre = 0.0 if info.min < 0 else half
    return (audio.astype(np.float64) - centre) / half


def _existing_file(path: Path) -> Path:
    if not path.exists():
        raise AudioError(f"No existe el archivo «{path}».", "Revisa la ruta y el nombre del archivo.")
    if path.is_dir():
        raise AudioError(f"«{path}» es una carpeta, no un archivo de audio.", "Elige un archivo de audio.")
    if not files.is_regular(path):  # a FIFO would block ffmpeg (and us) forever, a device never ends
        raise AudioError(
            f"«{path}» no es un archivo normal (es una tubería, un dispositivo o algo parecido).",
            "Elige un archivo de audio guardado en disco.",
        )
    try:
        with path.open("rb"):
            pass
    except PermissionError:
        raise AudioError(
            f"No tengo permiso para leer el archivo «{path.name}».",
            "Dale permiso de lectura (chmod +r) o cópialo a una carpeta tuya.",
        ) from None
    if path.stat().st_size == 0:
        raise AudioError(f"El archivo «{path.name}» está vacío (0 bytes).", "Vuelve a grabar o a copiar el audio.")
    return path


def _from_bytes(data: bytes) -> np.ndarray:
    if not data:
        raise AudioError("El audio está vacío (0 bytes).", "Vuelve a grabar: quizá el micrófono no llegó a arrancar.")
    # A temporary file, not a pipe: m4a/mp4 keep their index at the end and need a seekable input.
    with tempfile.TemporaryDirectory(prefix="course-audio-") as tmp:
        path = Path(tmp) / "audio"
        path.write_bytes(data)
        return _decode_file(path, name="el audio recibido")


def _decode_file(path: Path, name: str) -> np.ndarray:
    cmd = [
        ffmpeg_exe(),
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        "-i",
        str(path),
        "-vn",
        "-f",
        "f32le",
        "-ac",
        "1",
        "-acodec",
        "pcm_f32le",
        "-ar",
        str(SAMPLE_RATE),
        "-",
    ]
    try:
        run = subprocess.run(cmd, capture_output=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise AudioError(
            f"No se pudo ejecutar ffmpeg para leer {name}: {exc}", "Comprueba ffmpeg en el cuaderno 00_entorno."
        ) from None
    if run.returncode != 0:
        raise _ffmpeg_error(name, run.stderr.decode("utf-8", "replace"))
    audio = np.frombuffer(run.stdout, np.float32)
    if not np.all(np.isfinite(audio)):  # a float WAV can hold NaN or infinity: refused, as in an array
        raise AudioError(
            f"{name[0].upper() + name[1:]} contiene valores no válidos (NaN o infinito).",
            "Revisa cómo se generó el archivo (un cálculo que dividió entre cero, por ejemplo).",
        )
    return np.clip(audio, -1.0, 1.0)  # a float file may overshoot full scale, as an int16 one cannot


def _ffmpeg_error(name: str, log: str) -> AudioError:
    low, name = log.lower(), name[0].upper() + name[1:]
    if "does not contain any stream" in low or "matches no streams" in low:
        return AudioError(
            f"{name} no contiene ninguna pista de audio.",
            "Elige un archivo con sonido (no una imagen, un texto o un vídeo mudo).",
        )
    if "invalid data found" in low or "could not find codec" in low or "unknown format" in low:
        return AudioError(f"{name} no es un archivo de audio que se pueda leer (o está dañado).")
    return AudioError(
        f"{name} está dañado o incompleto: ffmpeg no pudo decodificarlo.",
        "Vuelve a grabarlo o conviértelo a wav o mp3.",
    )


def _check_content(audio: np.ndarray, allow_silence: bool = False) -> np.ndarray:
    if audio.size == 0:
        raise AudioError(
            "El audio no tiene ninguna muestra (duración 0 s).",
            "Vuelve a grabar: quizá la grabación se detuvo al empezar.",
        )
    if not allow_silence and float(np.max(np.abs(audio))) < SILENCE_PEAK:
        raise AudioError(
            f"El audio ({audio.size / SAMPLE_RATE:.1f} s) está en silencio.",
            "Comprueba que el micrófono está activado y habla más cerca.",
        )
    return audio


def duration(audio: np.ndarray) -> float:
    """Length in seconds of a 16 kHz array."""
    return len(audio) / SAMPLE_RATE


def log_mel(audio, n_mels: int | None = None, window: bool = False, model=None) -> np.ndarray:
    """Whisper's log-Mel spectrogram (n_mels × frames, 100 frames per second).

    The number of Mel bands is the model's (`model.dims.n_mels`: 80, or 128 in large-v3 and turbo)
    when a model is given, else `n_mels`, else 80. With window=True the audio is first padded or cut
    to the 30-second window the model sees, which gives exactly 3000 frames.
    """
    import whisper

    audio = load_audio(audio)
    if window:
        audio = whisper.pad_or_trim(audio)
    return whisper.log_mel_spectrogram(audio, n_mels=_bands(n_mels, model)).numpy()


def _bands(n_mels: int | None, model) -> int:
    if model is not None:
        if n_mels is not None and n_mels != model.dims.n_mels:
            raise AudioError(
                f"Este modelo lee {model.dims.n_mels} bandas Mel, no {n_mels}.", "Quita n_mels: se lee del modelo."
            )
        return model.dims.n_mels
    return n_mels or 80


def plot_waveform(audio, title: str = "Forma de onda", ax=None):
    """Amplitude over time, with Spanish labels. Returns the matplotlib Axes."""
    import matplotlib.pyplot as plt

    audio = load_audio(audio)
    ax = ax or plt.subplots(figsize=(10, 2.5))[1]
    ax.plot(np.arange(len(audio)) / SAMPLE_RATE, audio, linewidth=0.5)
    ax.set(title=title, xlabel="Tiempo (s)", ylabel="Amplitud", xlim=(0, duration(audio)), ylim=(-1, 1))
    return ax


def plot_log_mel(
    audio,
    title: str = "Espectrograma log-Mel",
    window: bool = False,
    n_mels: int | None = None,
    ax=None,
    model=None,
    windows=(),
    segments=(),
):
    """The log-Mel spectrogram Whisper reads, with Spanish labels. Returns the matplotlib Axes.

    `windows` (start times, s) are drawn as 30-second brackets above the bands, and `segments`
    (objects with .start and .end, like speech.Segment) as alternating shaded spans with their edges.
    """
    import matplotlib.pyplot as plt

    mel = log_mel(audio, n_mels=n_mels, window=window, model=model)
    ax = ax or plt.subplots(figsize=(10, 3))[1]
    bands, seconds = mel.shape[0], mel.shape[1] / 100
    image = ax.imshow(mel, origin="lower", aspect="auto", cmap="magma", extent=(0, seconds, 0, bands))
    ax.set(title=title, xlabel="Tiempo (s)", ylabel="Banda Mel (grave → agudo)")
    ax.figure.colorbar(image, ax=ax, label="Energía (log, normalizada)")
    _draw_segments(ax, segments, bands)
    _draw_windows(ax, windows, bands)
    if windows or segments:
        ax.set_ylim(0, bands * 1.32)
        ax.set_yticks(range(0, bands + 1, 20 if bands < 100 else 32))
        ax.set_xlim(0, max([seconds, *(start + WINDOW_SECONDS for start in windows)]))
    return ax


def _draw_segments(ax, segments, bands: int) -> None:
    """Numbered boxes just above the bands, with white lines at each segment's edges."""
    from matplotlib.patches import Rectangle

    for i, segment in enumerate(segments, start=1):
        width = segment.end - segment.start
        ax.add_patch(
            Rectangle((segment.start, bands * 1.01), width, bands * 0.08, color=("tab:cyan", "tab:green")[i % 2])
        )
        ax.text(segment.start + width / 2, bands * 1.05, str(i), ha="center", va="center", fontsize=10)
        ax.vlines([segment.start, segment.end], 0, bands, colors="white", linewidth=0.7)


def _draw_windows(ax, windows, bands: int) -> None:
    """A 30-second bracket per window start, staggered so that overlapping windows stay apart."""
    for i, start in enumerate(windows):
        height = bands * (1.15 + 0.09 * (i % 2))
        arrow = {"arrowstyle": "|-|", "color": "tab:blue"}
        ax.annotate("", xy=(start, height), xytext=(start + WINDOW_SECONDS, height), arrowprops=arrow)
        ax.text(start + 0.3, height + bands * 0.01, f"ventana {i + 1}: {start:.1f} s", color="tab:blue", fontsize=10)
