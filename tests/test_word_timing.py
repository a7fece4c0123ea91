"""course_utils.word_timing: Whisper's own word alignment, watched from inside; base's alignment heads from a file."""

import unicodedata

import matplotlib
import numpy as np
import pytest
import whisper
import whisper.timing

from course_utils import audio, speech, whisper_weights, word_timing

matplotlib.use("Agg")


def _bare(word: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", word.lower()) if unicodedata.category(c) != "Mn")


TEXT = "Hola, me llamo Ana y estudio Inteligencia Artificial en la Universidad."


def test_alignment_is_what_find_alignment_computes(samples):
    model = speech.load_model()  # the random stand-in: the numbers mean nothing, their relations hold
    found = word_timing.align(model, samples / "hola.wav", TEXT)
    rows, frames = len(found.tokens), int(6.14 * 50)
    assert found.tokens[0] == "<|notimestamps|>" and "".join(found.tokens[1:]) == " " + TEXT
    assert found.head_weights.shape == (len(found.heads), rows, frames) and found.matrix.shape == (rows, frames)
    np.testing.assert_allclose(found.matrix, found.head_weights.mean(axis=0), atol=1e-5)  # DTW reads the mean
    tokens, times = found.path
    assert tokens[0] == 0 and times[0] == 0 and tokens[-1] == rows - 1 and times[-1] == frames - 1
    assert np.all(np.diff(tokens) >= 0) and np.all(np.diff(times) >= 0)  # DTW only moves forward
    assert [w.text.strip() for w in found.words] == TEXT.split()  # punctuation glued as transcribe does
    assert all(0 <= w.start <= w.end <= 6.14 for w in found.words)
    table = found.table()
    assert [row["palabra"] for row in table] == TEXT.split() and "inicio (s)" in table._repr_html_()


def test_align_does_not_change_whisper_timing(samples):
    model = speech.load_model()
    before = (whisper.timing.dtw, whisper.timing.median_filter)
    word_timing.align(model, samples / "gato.wav", "el gato duerme")
    assert (whisper.timing.dtw, whisper.timing.median_filter) == before


def test_alignment_plot_has_every_head_and_the_path(samples):
    model = speech.load_model()
    found = word_timing.align(model, samples / "gato.wav", "El gato duerme en el sofá de la casa.")
    fig = word_timing.plot_alignment(found)
    axes = fig.axes
    assert len(axes) == len(found.heads) + 2  # one per head, the mean, its colour bar
    main = axes[len(found.heads)]
    assert main.get_xlabel() == "Tiempo (s)" and main.get_lines()[0].get_label() == "camino DTW"
    assert len(main.get_yticklabels()) == len(found.tokens)


def test_base_shaped_checkpoint_from_a_file_gets_base_alignment_heads():
    base_like = whisper.model.Whisper(whisper.model.ModelDimensions(**whisper_weights.BASE_DIMS))
    assert whisper_weights.adopt_base_alignment_heads(base_like)
    published = [[3, 1], [4, 2], [4, 3], [4, 7], [5, 1], [5, 2], [5, 4], [5, 6]]  # base's (layer, head)
    assert base_like.alignment_heads.indices().T.tolist() == published
    standin = speech.load_model()  # not base's shape: it keeps whisper's default, the second half's heads
    before = standin.alignment_heads.indices().T.tolist()
    assert not whisper_weights.adopt_base_alignment_heads(standin)
    assert standin.alignment_heads.indices().T.tolist() == before


def test_transcribe_gives_word_times_with_the_standin(samples):
    result = speech.transcribe(samples / "hola.wav", word_timestamps=True)
    words = [w for seg in result.segments for w in seg.words]
    assert words and all(0 <= w.start <= w.end <= result.duration and 0 <= w.probability <= 1 for w in words)
    for seg in result.segments:
        assert "".join(w.text for w in seg.words).strip() == seg.text


@pytest.mark.slow
@pytest.mark.parametrize("name", ["hola.wav", "describe_imagen.wav"])
def test_real_base_word_times_agree_with_faster_whisper(samples, name):
    """Two implementations (PyTorch, CTranslate2 int8) with base's heads give the same times.

    With whisper's default heads (every head of the decoder's second half) the times move by 0.2-0.3 s:
    this fails if the rebuilt checkpoint does not get base's alignment heads.
    """
    ct2 = speech.ct2_from_parts()
    checkpoint = str(speech.whisper_checkpoint_from_ct2(ct2))
    ours = speech.transcribe(samples / name, model=checkpoint, word_timestamps=True)
    theirs = speech.transcribe(samples / name, model=str(ct2), backend="faster-whisper", word_timestamps=True)
    a = [w for seg in ours.segments for w in seg.words]
    b = [w for seg in theirs.segments for w in seg.words]
    # the same words; in fp16 (CUDA) the two engines may pick a different accent on a near tie («envío»/«envió»)
    assert [_bare(w.text) for w in a] == [_bare(w.text) for w in b] and len(a) >= 6
    for x, y in zip(a, b):
        assert abs(x.start - y.start) <= 0.06 and abs(x.end - y.end) <= 0.06, (x, y)
    starts = [w.start for w in a]
    assert starts == sorted(starts) and a[-1].end <= audio.duration(audio.load_audio(samples / name))


@pytest.mark.slow
def test_real_base_alignment_matches_transcribe_and_the_voice(samples):
    checkpoint = str(speech.whisper_checkpoint_from_ct2(speech.ct2_from_parts()))
    model = speech.load_model(checkpoint)
    result = speech.transcribe(samples / "hola.wav", model=checkpoint, word_timestamps=True)
    found = word_timing.align(model, samples / "hola.wav", result.text)
    words = [w for seg in result.segments for w in seg.words]
    assert [w.text.strip() for w in found.words] == [w.text.strip() for w in words]
    for ours, theirs in zip(found.words, words):
        assert abs(ours.start - theirs.start) <= 0.1 and abs(ours.end - theirs.end) <= 0.1
    assert found.words[0].text.strip() == "Hola," and found.words[-1].text.strip() == "Universidad."
    # the real heads are sharp: each head's weights peak along the diagonal that DTW follows
    tokens, times = found.path
    on_path = found.matrix[tokens, times].mean()
    assert on_path > found.matrix.mean() + 1.5 * found.matrix.std()
