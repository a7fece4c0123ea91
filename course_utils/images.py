"""Opening images safely: any common input kind becomes an RGB PIL image, or a Spanish error."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from course_utils.errors import ImageError

MAX_PIXELS = 50_000_000  # larger images are refused: a decompression bomb, or far more than a model needs
FLOAT_TOLERANCE = 1e-3  # float pixels this far outside [0, 1] are rounding noise: clipped, not refused


def open_image(source, name: str | None = None) -> Image.Image:
    """Return an RGB image from a path, bytes, a PIL image or a numpy array (H×W or H×W×C).

    EXIF orientation is applied; RGBA, palette, CMYK, grayscale and 16-bit images become RGB.
    `name` (e.g. an uploaded file's name) is what error messages call bytes.

    Numpy arrays: uint8 is taken as is, uint16 as 16-bit (0..65535), bool as black/white, other
    integers as 0..255 (stretched if they go higher; negative values raise ImageError, since no
    brightness is below black). Floats must be finite and within [0, 1]
    (values at most FLOAT_TOLERANCE outside are clipped); any other float array raises ImageError
    saying how to convert it, e.g. `array.astype(np.uint8)` for 0..255 or `(array + 1) / 2` for −1..1.
    """
    if isinstance(source, Image.Image):
        return _to_rgb(source)
    if isinstance(source, np.ndarray):
        _check_integers(source)
        return _from_array(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        if not source:
            raise ImageError(
                f"«{name}» está vacío (0 bytes)." if name else "El archivo está vacío (0 bytes).", "Elige otra imagen."
            )
        return _decode(io.BytesIO(bytes(source)), f"«{name}»" if name else "El archivo recibido")
    if isinstance(source, (str, Path)):
        path = Path(source).expanduser()
        if path.is_dir():
            raise ImageError(f"{path} es una carpeta, no una imagen.", "Elige un archivo de imagen de dentro.")
        if path.exists() and not path.is_file():  # a FIFO would block forever, a device never ends
            raise ImageError(
                f"{path} no es un archivo normal (es una tubería, un dispositivo o algo parecido).",
                "Elige un archivo de imagen guardado en disco.",
            )
        if not path.is_file():
            raise ImageError(f"No encuentro el archivo {path}.", "Revisa la ruta (¿está bien escrita?).")
        return _decode(path, f"«{path.name}»")
    raise ImageError(
        f"No sé abrir una imagen a partir de {type(source).__name__}.",
        "Pasa una ruta, bytes, una imagen PIL o un array de numpy.",
    )


def _decode(fp, name: str) -> Image.Image:
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(fp) as img:
                if img.width * img.height > MAX_PIXELS:
                    raise Image.DecompressionBombError("too many pixels")
                img.load()
                return _to_rgb(img)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageError(
                f"{name} es demasiado grande (más de {MAX_PIXELS // 1_000_000} megapíxeles).",
                "Usa una imagen más pequeña: un modelo de visión trabaja a 224×224.",
            ) from None
        except PermissionError:
            raise ImageError(
                f"No tengo permiso para leer {name}.",
                "Dale permiso de lectura (chmod +r) o cópiala a una carpeta tuya.",
            ) from None
        except UnidentifiedImageError:
            raise ImageError(
                f"{name} no es una imagen que se pueda leer.", "Usa un archivo jpg, png, webp, gif o bmp."
            ) from None
        except (OSError, SyntaxError, ValueError):
            raise ImageError(
                f"{name} parece una imagen dañada o incompleta.", "Vuelve a descargarla o elige otra."
            ) from None


def _to_rgb(img: Image.Image) -> Image.Image:
    img = ImageOps.exif_transpose(img)
    if img.mode.startswith("I;16"):
        return _from_array(np.asarray(img, dtype=np.uint16))
    if img.mode == "I":
        return _from_array(np.asarray(img, dtype=np.int64))
    if img.mode == "F":  # float files have no fixed range: [0, 1] stays, 0..255 is divided, wider is stretched
        values = np.nan_to_num(np.asarray(img, dtype=np.float64))
        top = float(values.max())
        return _from_array(np.clip(values / (1.0 if top <= 1 else 255.0 if top <= 255 else top), 0, 1))
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        background = Image.new("RGB", img.size, (255, 255, 255))
        background.paste(img, mask=img.getchannel("A"))
        return background
    return img.convert("RGB") if img.mode != "RGB" else img.copy()


def _from_array(array: np.ndarray) -> Image.Image:
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if (
        array.ndim not in (2, 3)
        or (array.ndim == 3 and array.shape[-1] not in (3, 4))
        or array.size == 0
        or array.dtype.kind not in "biuf"
    ):
        raise ImageError(
            f"Un array de forma {array.shape} y tipo {array.dtype} no es una imagen.",
            "Usa un array alto×ancho (gris) o alto×ancho×3 (RGB).",
        )
    if array.dtype.kind == "f":
        array = _unit_floats(array) * 255.0
    elif array.dtype != np.uint8:
        array = np.asarray(array, dtype=np.float64) * _scale(array)
    if array.dtype != np.uint8:
        array = np.clip(array, 0, 255).round().astype(np.uint8)
    return _to_rgb(Image.fromarray(np.ascontiguousarray(array)))


def _check_integers(array: np.ndarray) -> None:
    """Integer pixels are brightness from 0 up: negative ones (centred or signed data) would turn black."""
    if array.dtype.kind == "i" and array.size and (low := int(array.min())) < 0:
        raise ImageError(
            f"Un array de imagen con enteros debe ir de 0 a 255, y este tiene valores negativos (desde {low}).",
            "Si va de -128 a 127, súmale 128 (`array.astype(np.int16) + 128`); si no, llévalo a "
            "0..255 con `(array - array.min()) * 255 // (array.max() - array.min())`.",
        )


def _unit_floats(array: np.ndarray) -> np.ndarray:
    """A float array that follows the [0, 1] rule, clipped; else an ImageError that says how to convert."""
    values = np.asarray(array, dtype=np.float64)
    if not np.all(np.isfinite(values)):
        raise ImageError(
            "El array de la imagen tiene valores NaN o infinitos; sus decimales deben ir de 0 a 1.",
            "Sustituye esos valores (por ejemplo con `np.nan_to_num(array)`) o revisa cómo se calculó.",
        )
    low, high = float(values.min()), float(values.max())
    if low < -FLOAT_TOLERANCE or high > 1 + FLOAT_TOLERANCE:
        raise ImageError(
            f"Un array de imagen con decimales debe ir de 0 a 1, y este va de {low:.3g} a {high:.3g}.",
            "Si va de 0 a 255, conviértelo con `array.astype(np.uint8)`; si va de -1 a 1, con "
            "`(array + 1) / 2`; si no, normalízalo con "
            "`(array - array.min()) / (array.max() - array.min())`.",
        )
    return np.clip(values, 0.0, 1.0)


def _scale(array: np.ndarray) -> float:
    """The factor that brings an integer or bool array's values to 0..255."""
    if array.dtype == np.uint16:
        return 255.0 / 65535.0  # 16-bit images keep their real brightness
    if array.dtype == bool:
        return 255.0
    top = float(array.max())
    # Values already in 0..255 stay; anything wider (e.g. 32-bit) is stretched to fit.
    return 1.0 if top <= 255 else 255.0 / top
