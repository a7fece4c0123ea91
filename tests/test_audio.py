"""course_utils.audio: any container to 16 kHz mono float32, plots, and a Spanish error for each bad input."""

import os
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from course_utils import audio
from course_utils.errors import AudioError

ENCODINGS = {  # as a browser or a phone would send them
    "webm": ["-c:a", "libopus", "-f", "webm"],  # written to a pipe: no duration, like MediaRecorder's blobs
    "ogg": ["-c:a", "libopus", "-f", "ogg"],
    "mp3": ["-c:a", "libmp3lame", "-f", "mp3"],
    "m4a": ["-c:a", "aac", "-f", "ipod", "-movflags", "frag_keyframe"],
}


def _wav_frames(path):
    with wave.open(str(path)) as w:
        return w.getnframes(), w.getframerate()


def encode(path, fmt) -> bytes:
    cmd = [audio.ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-i", str(path), *ENCODINGS[fmt], "-"]
    return subprocess.run(cmd, capture_output=True, check=True).stdout


def write_wav(path, samples: np.ndarray, rate=16000):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype(np.int16).tobytes())
    return path


def test_ffmpeg_exe_runs():
    out = subprocess.run([audio.ffmpeg_exe(), "-version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("ffmpeg version")


def test_wav_path_str_and_bytes_agree(samples):
    path = samples / "hola.wav"
    frames, rate = _wav_frames(path)
    assert rate == audio.SAMPLE_RATE
    from_path = audio.load_audio(path)
    assert from_path.dtype == np.float32 and from_path.ndim == 1 and len(from_path) == frames
    assert -1.0 <= from_path.min() < 0 < from_path.max() <= 1.0
    np.testing.assert_array_equal(audio.load_audio(str(path)), from_path)
    np.testing.assert_array_equal(audio.load_audio(path.read_bytes()), from_path)


def test_resamples_and_mixes_down(tmp_path, samples):
    stereo_44k = tmp_path / "stereo.wav"
    subprocess.run(
        [
            audio.ffmpeg_exe(),
            "-loglevel",
            "error",
            "-i",
            str(samples / "gato.wav"),
            "-ar",
            "44100",
            "-ac",
            "2",
            str(stereo_44k),
        ],
        check=True,
    )
    frames, _ = _wav_frames(samples / "gato.wav")
    assert abs(len(audio.load_audio(stereo_44k)) - frames) <= 16


@pytest.mark.parametrize("fmt", sorted(ENCODINGS))
def test_browser_and_phone_containers_as_bytes_and_files(fmt, samples, tmp_path):
    original = audio.load_audio(samples / "hola.wav")
    data = encode(samples / "hola.wav", fmt)
    from_bytes = audio.load_audio(data)
    (tmp_path / f"hola.{fmt}").write_bytes(data)
    from_file = audio.load_audio(tmp_path / f"hola.{fmt}")
    for decoded in (from_bytes, from_file):
        assert decoded.dtype == np.float32 and decoded.ndim == 1
        assert abs(len(decoded) - len(original)) < 0.1 * audio.SAMPLE_RATE  # codec padding only
        assert np.sqrt(np.mean(decoded**2)) == pytest.approx(np.sqrt(np.mean(original**2)), rel=0.2)


def test_numpy_arrays_pass_through():
    t = np.arange(16000) / 16000
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    out = audio.load_audio(tone)
    assert out.dtype == np.float32 and np.allclose(out, tone, atol=1e-6)
    assert np.allclose(audio.load_audio((tone * 32767).astype(np.int16)), tone, atol=1e-3)
    assert np.allclose(audio.load_audio(np.stack([tone, tone])), tone, atol=1e-6)  # (channels, samples)
    assert np.allclose(audio.load_audio(np.stack([tone, tone], axis=1)), tone, atol=1e-6)


def _bad_inputs(tmp_path, samples):
    text = tmp_path / "notas.txt"
    text.write_text("esto no es audio, es texto " * 50, encoding="utf-8")
    empty = tmp_path / "vacio.wav"
    empty.write_bytes(b"")
    header_only = tmp_path / "cortado.wav"
    header_only.write_bytes((samples / "hola.wav").read_bytes()[:30])
    return {
        "empty bytes": (b"", "vacío"),
        "empty file": (empty, "vacío"),
        "silent wav": (write_wav(tmp_path / "silencio.wav", np.zeros(16000)), "silencio"),
        "silent array": (np.zeros(8000, np.float32), "silencio"),
        "empty array": (np.zeros(0, np.float32), "ninguna muestra"),
        "nan array": (np.full(100, np.nan), "no válidos"),
        "corrupt bytes": (np.random.default_rng(0).bytes(4000), "no es un archivo de audio"),
        "truncated wav": (header_only, "no es un archivo de audio"),
        "text file": (text, "audio"),  # ffmpeg reads .txt as a text-video: "no audio track" is right too
        "image file": (samples / "gato.jpg", "ninguna pista de audio"),
        "missing file": (tmp_path / "no_existe.wav", "No existe"),
        "folder": (tmp_path, "carpeta"),
        "wrong type": (42, "No sé leer audio"),
    }


BAD = [
    "empty bytes",
    "empty file",
    "silent wav",
    "silent array",
    "empty array",
    "nan array",
    "corrupt bytes",
    "truncated wav",
    "text file",
    "image file",
    "missing file",
    "folder",
    "wrong type",
]


@pytest.mark.parametrize("case", BAD)
def test_bad_input_gives_spanish_message(case, tmp_path, samples):
    source, expected = _bad_inputs(tmp_path, samples)[case]
    with pytest.raises(AudioError) as err:
        audio.load_audio(source)
    assert expected in err.value.message
    assert err.value.hint and "Traceback" not in str(err.value)


def test_log_mel_shapes(samples):
    clip = audio.load_audio(samples / "gato.wav")
    assert audio.log_mel(clip, window=True).shape == (80, 3000)  # 30 s × 100 frames/s
    mel = audio.log_mel(clip)
    assert mel.shape[0] == 80 and abs(mel.shape[1] - len(clip) / 160) <= 1
    assert audio.log_mel(clip, n_mels=128).shape[0] == 128


def test_plots_have_spanish_labels(samples):
    import matplotlib

    matplotlib.use("Agg")
    ax = audio.plot_waveform(samples / "gato.wav", title="El gato")
    assert (ax.get_title(), ax.get_xlabel(), ax.get_ylabel()) == ("El gato", "Tiempo (s)", "Amplitud")
    assert ax.get_xlim()[1] == pytest.approx(4.3, abs=0.1)
    ax = audio.plot_log_mel(samples / "gato.wav", window=True)
    assert ax.get_xlabel() == "Tiempo (s)" and ax.get_ylabel().startswith("Banda Mel")
    assert ax.get_xlim()[1] == pytest.approx(30.0)
    matplotlib.pyplot.close("all")


def _tone(amplitude=0.25):
    return amplitude * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)


@pytest.mark.parametrize(
    "dtype, to_pcm",
    [
        (np.int16, lambda x: np.round(x * 32767)),
        (np.int32, lambda x: np.round(x * (2**31 - 1))),
        (np.int8, lambda x: np.round(x * 127)),
        (np.uint8, lambda x: np.round(128 + x * 127)),  # 8-bit WAV is unsigned, centred on 128
        (np.uint16, lambda x: np.round(32768 + x * 32767)),
    ],
)
@pytest.mark.parametrize("layout", ["mono", "channels first", "channels last"])
def test_integer_arrays_are_scaled_by_their_type_in_any_layout(dtype, to_pcm, layout):
    tone = _tone()
    pcm = to_pcm(tone).astype(dtype)
    pcm = {"mono": pcm, "channels first": np.stack([pcm, pcm]), "channels last": np.stack([pcm, pcm], axis=1)}[layout]
    out = audio.load_audio(pcm)
    assert out.dtype == np.float32 and out.shape == tone.shape
    half_range = (int(np.iinfo(dtype).max) - int(np.iinfo(dtype).min) + 1) / 2
    np.testing.assert_allclose(out, tone, atol=1 / half_range)  # rounding to the integer grid


def test_int16_stereo_at_8000_is_a_quarter_of_full_scale():
    left = (8000 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)).astype(np.int16)
    out = audio.load_audio(np.stack([left, left // 2], axis=1))
    assert np.max(np.abs(out)) == pytest.approx(0.75 * 8000 / 32768, rel=1e-3)


@pytest.mark.parametrize(
    "array", [np.zeros((100, 16000)), np.zeros((2, 3, 16000)), _tone().astype(np.complex64), np.ones(16000, dtype=bool)]
)
def test_arrays_that_are_not_audio_say_what_is_accepted(array):
    with pytest.raises(AudioError) as err:
        audio.load_audio(array)
    assert f"forma {array.shape}" in err.value.message and "(n, 2)" in err.value.hint


def _deny_reading(monkeypatch, target):
    """Like a file without read permission (chmod 000 does not stop root, who runs the tests here)."""
    real_open = Path.open

    def fake_open(self, *args, **kwargs):
        if Path(self) == target:
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", fake_open)


def test_unreadable_file_says_permission(tmp_path, samples, monkeypatch):
    locked = tmp_path / "bloqueado.wav"
    locked.write_bytes((samples / "hola.wav").read_bytes())
    _deny_reading(monkeypatch, locked)
    with pytest.raises(AudioError) as err:
        audio.load_audio(locked)
    assert "No tengo permiso para leer el archivo «bloqueado.wav»" in err.value.message
    assert "chmod" in err.value.hint


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files even with chmod 000; the monkeypatched test covers it")
def test_unreadable_file_says_permission_for_real(tmp_path, samples):
    locked = tmp_path / "bloqueado.wav"
    locked.write_bytes((samples / "hola.wav").read_bytes())
    locked.chmod(0)
    with pytest.raises(AudioError, match="No tengo permiso"):
        audio.load_audio(locked)


def test_silence_is_returned_when_asked_for(tmp_path):
    silent = write_wav(tmp_path / "silencio.wav", np.zeros(16000))
    assert not np.any(audio.load_audio(silent, allow_silence=True))
    assert audio.load_audio(np.zeros(800, np.float32), allow_silence=True).shape == (800,)
    with pytest.raises(AudioError, match="ninguna muestra"):
        audio.load_audio(np.zeros(0, np.float32), allow_silence=True)
