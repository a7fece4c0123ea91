"""open_image turns every common input kind into an RGB image, and refuses bad ones with a Spanish message."""

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from course_utils import images
from course_utils.errors import CourseError, ImageError
from course_utils.images import open_image


def encode(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def test_every_input_kind_gives_the_same_rgb_image(samples):
    path = samples / "gato.jpg"
    reference = open_image(path)
    assert reference.mode == "RGB"
    for source in (
        str(path),
        path.read_bytes(),
        memoryview(path.read_bytes()),
        Image.open(path),
        np.asarray(reference),
    ):
        img = open_image(source)
        assert img.mode == "RGB" and img.size == reference.size
        assert np.array_equal(np.asarray(img), np.asarray(reference))


def test_exif_orientation_is_applied():
    # A 40×20 picture, left half red, stored with "rotate 90° clockwise to display" (orientation 6).
    img = Image.new("RGB", (40, 20), "blue")
    img.paste((255, 0, 0), (0, 0, 20, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    shown = open_image(encode(img, "JPEG", exif=exif, quality=95))
    assert shown.size == (20, 40)
    top, bottom = np.asarray(shown)[5, 10], np.asarray(shown)[35, 10]
    assert top[0] > 200 and top[2] < 60  # the red half ends up on top
    assert bottom[2] > 200 and bottom[0] < 60


def test_transparent_rgba_becomes_white_background():
    img = Image.new("RGBA", (8, 8), (255, 0, 0, 0))
    img.putpixel((0, 0), (0, 0, 255, 255))
    rgb = open_image(encode(img, "PNG"))
    assert rgb.mode == "RGB"
    assert rgb.getpixel((1, 1)) == (255, 255, 255)
    assert rgb.getpixel((0, 0)) == (0, 0, 255)


def test_palette_with_transparency_and_grayscale_and_cmyk():
    palette = Image.new("P", (4, 4), 1)
    palette.putpalette([0, 0, 0, 0, 200, 0] + [0] * 762)
    palette.putpixel((0, 0), 0)
    rgb = open_image(encode(palette, "PNG", transparency=0))
    assert rgb.getpixel((0, 0)) == (255, 255, 255) and rgb.getpixel((1, 1)) == (0, 200, 0)

    gray = open_image(encode(Image.new("L", (4, 4), 128), "PNG"))
    assert gray.mode == "RGB" and gray.getpixel((0, 0)) == (128, 128, 128)

    cmyk = open_image(encode(Image.new("CMYK", (4, 4), (0, 255, 255, 0)), "JPEG", quality=100))
    red, green, blue = cmyk.getpixel((1, 1))
    assert cmyk.mode == "RGB" and red > 200 and green < 60 and blue < 60


def test_sixteen_bit_keeps_its_brightness():
    img = Image.fromarray(np.full((4, 4), 32768, dtype=np.uint16))  # mid-gray in 16 bits
    assert img.mode.startswith("I;16")
    rgb = open_image(encode(img, "PNG"))
    assert rgb.mode == "RGB" and abs(rgb.getpixel((0, 0))[0] - 128) <= 1
    assert open_image(np.full((4, 4), 65535, dtype=np.uint16)).getpixel((0, 0)) == (255, 255, 255)


def test_numpy_arrays_follow_the_usual_conventions():
    assert open_image(np.full((2, 2), 0.5)).getpixel((0, 0)) == (128, 128, 128)  # floats in [0, 1]
    assert open_image(np.full((2, 2, 3), 200, dtype=np.int64)).getpixel((0, 0)) == (200, 200, 200)
    assert open_image(np.full((2, 2, 1), 7, dtype=np.uint8)).getpixel((0, 0)) == (7, 7, 7)
    assert open_image(np.zeros((6, 4, 3), dtype=np.uint8)[:, ::2]).size == (2, 6)  # non-contiguous view


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims a huge size: a decompression bomb is refused before any pixel is decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


@pytest.mark.parametrize("side", [8000, 10_000, 30_000])  # our limit, Pillow's warning, Pillow's error
def test_decompression_bomb_is_refused(side):
    with pytest.raises(ImageError, match="demasiado grande"):
        open_image(png_header_only(side, side))


def test_limit_is_checked_on_files_too(tmp_path, monkeypatch, samples):
    monkeypatch.setattr(images, "MAX_PIXELS", 1000)
    with pytest.raises(ImageError, match="«gato.jpg» es demasiado grande"):
        open_image(samples / "gato.jpg")


@pytest.mark.parametrize(
    "source, words",
    [
        (b"esto es texto, no una imagen", "no es una imagen"),
        (b"", "vacío"),
        (encode(Image.new("RGB", (64, 64), "red"), "JPEG")[:200], "dañada"),
        (encode(Image.new("RGB", (64, 64), "red"), "PNG")[:60], "dañada"),
        (12345, "No sé abrir"),
        (np.zeros((4, 4, 2)), "no es una imagen"),
        (np.zeros((0, 4)), "no es una imagen"),
        (np.array([["a", "b"]]), "no es una imagen"),
    ],
)
def test_bad_inputs_raise_a_spanish_image_error(source, words):
    with pytest.raises(ImageError) as err:
        open_image(source)
    assert words in err.value.message
    assert err.value.hint and isinstance(err.value, CourseError)


def test_bad_files_name_the_file(tmp_path, samples):
    notes = tmp_path / "notas.jpg"
    notes.write_text("no soy una foto", encoding="utf-8")
    with pytest.raises(ImageError, match="«notas.jpg» no es una imagen"):
        open_image(notes)
    with pytest.raises(ImageError, match="No encuentro el archivo"):
        open_image(tmp_path / "falta.png")
    with pytest.raises(ImageError, match="es una carpeta"):
        open_image(samples)
    with pytest.raises(ImageError, match="«subida.png» no es una imagen"):
        open_image(b"texto", name="subida.png")


def test_float_arrays_in_zero_one_with_a_tiny_overshoot_are_clipped():
    ramp = np.linspace(0, 1, 12).reshape(3, 4)
    ramp[0, 0], ramp[2, 3] = -0.0005, 1.0001  # rounding noise from a computation
    img = np.asarray(open_image(ramp))[..., 0]
    np.testing.assert_array_equal(img, np.round(np.clip(ramp, 0, 1) * 255))
    assert open_image(np.full((2, 2, 3), 1.0, dtype=np.float32)).getpixel((0, 0)) == (255, 255, 255)


@pytest.mark.parametrize(
    "array, words, hint",
    [
        (np.full((4, 4), np.nan), "NaN o infinitos", "np.nan_to_num"),
        (np.array([[0.0, np.inf], [0.5, 1.0]]), "NaN o infinitos", "np.nan_to_num"),
        (np.linspace(-1, 1, 16).reshape(4, 4), "va de -1 a 1", "(array + 1) / 2"),
        (np.linspace(0, 255, 16).reshape(4, 4), "va de 0 a 255", "array.astype(np.uint8)"),
        (np.linspace(0, 1.01, 16).reshape(4, 4), "va de 0 a 1.01", "array.min()"),
    ],
)
def test_float_arrays_outside_zero_one_say_how_to_convert(array, words, hint):
    with pytest.raises(ImageError) as err:
        open_image(array)
    assert words in err.value.message and "de 0 a 1" in err.value.message
    assert hint in err.value.hint


def test_float_image_files_keep_working(tmp_path):
    wide = np.linspace(0, 1000, 16, dtype=np.float32).reshape(4, 4)  # a 32-bit float TIFF has no fixed range
    Image.fromarray(wide).save(tmp_path / "medida.tif")
    img = open_image(tmp_path / "medida.tif")
    assert img.getpixel((0, 0)) == (0, 0, 0) and img.getpixel((3, 3)) == (255, 255, 255)
    Image.fromarray(np.full((4, 4), 300, dtype=np.int32)).save(tmp_path / "entero.tif")
    assert open_image(tmp_path / "entero.tif").getpixel((0, 0)) == (255, 255, 255)


def _deny_reading(monkeypatch, target):
    """Like a file without read permission (chmod 000 does not stop root, who runs the tests here)."""
    real_open = Image.open

    def fake_open(fp, *args, **kwargs):
        if isinstance(fp, (str, Path)) and Path(fp) == target:
            raise PermissionError(13, "Permission denied", str(fp))
        return real_open(fp, *args, **kwargs)

    monkeypatch.setattr(Image, "open", fake_open)


def test_unreadable_file_says_permission_not_damage(tmp_path, samples, monkeypatch):
    locked = tmp_path / "bloqueada.jpg"
    locked.write_bytes((samples / "gato.jpg").read_bytes())
    _deny_reading(monkeypatch, locked)
    with pytest.raises(ImageError) as err:
        open_image(locked)
    assert "No tengo permiso para leer «bloqueada.jpg»" in err.value.message and "chmod" in err.value.hint


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files even with chmod 000; the monkeypatched test covers it")
def test_unreadable_file_says_permission_for_real(tmp_path, samples):
    locked = tmp_path / "bloqueada.jpg"
    locked.write_bytes((samples / "gato.jpg").read_bytes())
    locked.chmod(0)
    with pytest.raises(ImageError, match="No tengo permiso"):
        open_image(locked)
