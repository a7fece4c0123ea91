"""course_utils.audio: any container to 16 kHz mono float32, plots, and a Spanish error for each bad input."""

import subprocess
import wave

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
    subprocess.run([audio.ffmpeg_exe(), "-loglevel", "error", "-i", str(samples / "gato.wav"),
                    "-ar", "44100", "-ac", "2", str(stereo_44k)], check=True)
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


BAD = ["empty bytes", "empty file", "silent wav", "silent array", "empty array", "nan array", "corrupt bytes",
       "truncated wav", "text file", "image file", "missing file", "folder", "wrong type"]


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
