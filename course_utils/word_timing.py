"""When each word is said: Whisper's cross-attention alignment, seen from inside.

openai-whisper times words (`word_timestamps=True`) with `whisper.timing.find_alignment`: the decoder
reads the text once more, the cross-attention weights of a few *alignment heads* say which 20 ms of
audio each token looks at, and dynamic time warping (DTW) finds the monotonic path through them.
`align` runs that same function and keeps what it computes along the way, to draw it.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from unittest import mock

import numpy as np

from course_utils.audio import load_audio
from course_utils.display import Table

TOKENS_PER_SECOND = 50  # the encoder's output: one position per 20 ms of audio


@dataclass
class AlignedWord:
    text: str
    start: float
    end: float
    probability: float


@dataclass
class Alignment:
    words: list[AlignedWord]
    tokens: list[str]  # the rows: <|notimestamps|> and then the text's tokens
    heads: list[tuple[int, int]]  # the alignment heads (decoder layer, head)
    head_weights: np.ndarray  # (heads, tokens, audio positions): softmax, normalised, median-filtered
    matrix: np.ndarray  # (tokens, audio positions): the mean over the heads, what DTW reads
    path: np.ndarray  # (2, steps): token index and audio position of each step of the DTW path

    def table(self) -> Table:
        """The words with their start and end (seconds) and the model's probability."""
        rows = [
            {
                "palabra": w.text.strip(),
                "inicio (s)": f"{w.start:.2f}",
                "fin (s)": f"{w.end:.2f}",
                "probabilidad": f"{w.probability:.2f}",
            }
            for w in self.words
        ]
        return Table(rows, left=["palabra"])


def align(model, audio, text: str, language: str = "es") -> Alignment:
    """Align `text` with the first 30 s of `audio` using `model`'s alignment heads.

    `model` is an openai-whisper model (speech.load_model()); `text` what was said (e.g. a transcription).
    The words and times are those of whisper.timing.find_alignment, which this calls; the weights and
    the path are what that function passed to its median filter and to its DTW.
    """
    import torch
    import whisper
    import whisper.timing

    tokenizer = whisper.tokenizer.get_tokenizer(
        model.is_multilingual, num_languages=model.num_languages, language=language, task="transcribe"
    )
    clip = load_audio(audio)[: whisper.audio.N_SAMPLES]
    mel = whisper.log_mel_spectrogram(whisper.pad_or_trim(clip), n_mels=model.dims.n_mels)
    mel = mel.to(model.device, next(model.parameters()).dtype)
    text_tokens = tokenizer.encode(" " + text.strip())
    seen = {}
    real_median, real_dtw = whisper.timing.median_filter, whisper.timing.dtw
    with (  # the same function transcribe uses, watched at its median filter and its DTW
        mock.patch.object(whisper.timing, "median_filter", _watch_filter(real_median, seen)),
        mock.patch.object(whisper.timing, "dtw", _watch_dtw(real_dtw, seen)),
    ):
        timings = whisper.timing.find_alignment(
            model, tokenizer, text_tokens, mel, len(clip) // whisper.audio.HOP_LENGTH
        )
    defaults = inspect.signature(whisper.transcribe).parameters  # glue punctuation to words, as transcribe does
    whisper.timing.merge_punctuations(
        timings, defaults["prepend_punctuations"].default, defaults["append_punctuations"].default
    )
    timings = [t for t in timings if t.word]
    rows = slice(len(tokenizer.sot_sequence), -1)  # as find_alignment: <|notimestamps|> + the text
    return Alignment(
        words=[AlignedWord(t.word, float(t.start), float(t.end), float(t.probability)) for t in timings],
        tokens=["<|notimestamps|>"] + [tokenizer.decode([t]) for t in text_tokens],
        heads=[tuple(int(i) for i in pair) for pair in model.alignment_heads.indices().T.tolist()],
        head_weights=_numpy(seen["heads"][:, rows]) if "heads" in seen else np.zeros((0, 0, 0)),
        matrix=_numpy(seen.get("matrix", torch.zeros(0, 0))),
        path=np.asarray(seen.get("path", np.zeros((2, 0), int))),
    )


def _watch_filter(real, seen: dict):
    def spy(x, *args):
        seen["heads"] = real(x, *args)
        return seen["heads"]

    return spy


def _watch_dtw(real, seen: dict):
    def spy(x):
        seen["matrix"], seen["path"] = -x, real(x)
        return seen["path"]

    return spy


def _numpy(tensor) -> np.ndarray:
    return tensor.detach().float().cpu().numpy()


def plot_alignment(alignment: Alignment, title: str = "Alineación de palabras"):
    """The alignment heads one by one (top) and their mean with the DTW path and the words (bottom)."""
    import matplotlib.pyplot as plt

    n_heads = len(alignment.heads)
    frames = alignment.matrix.shape[1]
    seconds = frames / TOKENS_PER_SECOND
    fig = plt.figure(figsize=(11, 7.5), constrained_layout=True)
    grid = fig.add_gridspec(2, max(n_heads, 1), height_ratios=(1, 3))
    for i, (layer, head) in enumerate(alignment.heads):
        ax = fig.add_subplot(grid[0, i])
        ax.imshow(
            alignment.head_weights[i], aspect="auto", cmap="viridis", extent=(0, seconds, len(alignment.tokens), 0)
        )
        ax.set_title(f"capa {layer}\ncabeza {head}", fontsize=8)
        ax.set(xticks=[], yticks=[])
    ax = fig.add_subplot(grid[1, :])
    image = ax.imshow(alignment.matrix, aspect="auto", cmap="viridis", extent=(0, seconds, len(alignment.tokens), 0))
    token_index, time_index = alignment.path
    ax.plot((time_index + 0.5) / TOKENS_PER_SECOND, token_index + 0.5, color="red", linewidth=1.5, label="camino DTW")
    ax.set_yticks(np.arange(len(alignment.tokens)) + 0.5, [repr(t)[1:-1] for t in alignment.tokens], fontsize=8)
    for word in alignment.words:
        ax.axvline(word.start, color="white", linewidth=0.5, alpha=0.6)
    ax.set(title=title, xlabel="Tiempo (s)", ylabel="Token")
    ax.legend(loc="upper right")
    fig.colorbar(image, ax=ax, label="Atención cruzada (normalizada, media de las cabezas)")
    return fig
