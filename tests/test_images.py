"""open_image turns every common input kind into an RGB image, and refuses bad ones with a Spanish message."""

import io
import struct
import zlib

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
    for source in (str(path), path.read_bytes(), memoryview(path.read_bytes()), Image.open(path),
                   np.asarray(reference)):
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


@pytest.mark.parametrize("source, words", [
    (b"esto es texto, no una imagen", "no es una imagen"),
    (b"", "vacío"),
    (encode(Image.new("RGB", (64, 64), "red"), "JPEG")[:200], "dañada"),
    (encode(Image.new("RGB", (64, 64), "red"), "PNG")[:60], "dañada"),
    (12345, "No sé abrir"),
    (np.zeros((4, 4, 2)), "no es una imagen"),
    (np.zeros((0, 4)), "no es una imagen"),
    (np.array([["a", "b"]]), "no es una imagen"),
])
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
