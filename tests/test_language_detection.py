"""course_utils.language_detection: the language is the decoder's first step after <|startoftranscript|>."""

import matplotlib
import numpy as np
import pytest
import torch
import whisper

from course_utils import audio, language_detection, speech

matplotlib.use("Agg")


def tiny_whisper(bands: int, vocabulary: int) -> whisper.model.Whisper:
    """A random Whisper shaped like large-v3 at the edges: 128 bands and 100 languages (n_vocab 51866)."""
    dims = whisper.model.ModelDimensions(bands, 50, 32, 2, 1, vocabulary, 16, 32, 2, 1)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = whisper.model.Whisper(dims)
        torch.nn.init.normal_(model.decoder.positional_embedding, std=0.02)
    return model.eval()


def _mel(model, clip):
    mel = whisper.log_mel_spectrogram(whisper.pad_or_trim(clip), n_mels=model.dims.n_mels)
    return mel[:, : 2 * model.dims.n_audio_ctx]  # the tiny model's encoder reads 1 s, real ones 30 s


@pytest.mark.parametrize("which", ["standin", "large-v3-like"])
def test_hand_computation_equals_detect_language(samples, which):
    model = speech.load_model() if which == "standin" else tiny_whisper(128, 51866)
    mel = _mel(model, audio.load_audio(samples / "hola.wav"))
    ours = language_detection.language_probabilities(model, mel)
    _, theirs = model.detect_language(mel.to(model.device))  # openai-whisper leaves the mel where it is
    assert set(ours) == set(theirs) and len(ours) == model.num_languages
    assert max(abs(ours[code] - theirs[code]) for code in theirs) < 1e-5
    assert sum(ours.values()) == pytest.approx(1.0, abs=1e-5)


def test_special_tokens_come_from_the_model_tokenizer():
    for model, languages in ((speech.load_model(), 99), (tiny_whisper(128, 51866), 100)):
        table = language_detection.special_tokens(model)
        tokens = {row["token"]: row["número"] for row in table}
        tok = language_detection.tokenizer_of(model)
        assert tokens["<|startoftranscript|>"] == tok.sot and tokens["<|es|>"] == tok.to_language_token("es")
        assert {"<|transcribe|>", "<|translate|>", "<|notimestamps|>", "<|0.00|>", "<|30.00|>"} <= set(tokens)
        assert tokens["<|30.00|>"] - tokens["<|0.00|>"] == 1500  # one every 20 ms over 30 s
        assert f"uno de los {languages} tokens de idioma" in str(table)


def test_language_bars_are_sorted_and_named_in_spanish():
    probabilities = {"es": 0.7, "en": 0.05, "it": 0.1, "el": 0.15}
    ax = language_detection.plot_language_probabilities(probabilities, top=3)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["italiano (it)", "griego (el)", "español (es)"]  # the most likely on top
    assert [round(p.get_width(), 2) for p in ax.patches] == [0.1, 0.15, 0.7]


def test_log_mel_reads_its_bands_from_the_model(samples):
    clip = audio.load_audio(samples / "gato.wav")
    wide = tiny_whisper(128, 51866)
    assert audio.log_mel(clip, model=wide, window=True).shape == (128, 3000)
    assert audio.log_mel(clip, model=speech.load_model()).shape[0] == speech.load_model().dims.n_mels
    with pytest.raises(audio.AudioError, match="lee 128 bandas Mel, no 80"):
        audio.log_mel(clip, n_mels=80, model=wide)


def test_spectrogram_shows_windows_and_segments(samples):
    clip = np.concatenate([audio.load_audio(samples / "hola.wav")] * 6)  # 36.8 s
    segments = [speech.Segment(0.0, 6.0, "a"), speech.Segment(6.0, 29.0, "b"), speech.Segment(29.0, 36.0, "c")]
    ax = audio.plot_log_mel(clip, windows=[0.0, 29.0], segments=segments)
    assert ax.get_xlim() == (0.0, 59.0)  # the second window runs past the audio: Whisper pads it
    labels = [t.get_text() for t in ax.texts if t.get_text()]  # (the brackets are empty annotations)
    assert labels == ["1", "2", "3", "ventana 1: 0.0 s", "ventana 2: 29.0 s"]


@pytest.mark.slow
def test_real_base_says_spanish_by_hand_as_detect_language(samples):
    model = speech.load_model(str(speech.whisper_checkpoint_from_ct2(speech.ct2_from_parts())))
    mel = _mel(model, audio.load_audio(samples / "gato.wav"))
    ours = language_detection.language_probabilities(model, mel)
    _, theirs = model.detect_language(mel.to(model.device))  # openai-whisper leaves the mel where it is
    assert max(abs(ours[code] - theirs[code]) for code in theirs) < 1e-5
    assert max(ours, key=ours.get) == "es" and ours["es"] > 0.5
