"""How Whisper decides the language: its special tokens and the decoder's first step, by hand."""

from __future__ import annotations

from course_utils.display import Table


def tokenizer_of(model, language: str | None = None, task: str = "transcribe"):
    """openai-whisper's tokenizer for `model` (its number of languages: 99, or 100 in large-v3 and turbo)."""
    import whisper  # heavy (torch)

    return whisper.tokenizer.get_tokenizer(
        model.is_multilingual, num_languages=model.num_languages, language=language, task=task
    )


def special_tokens(model) -> Table:
    """The special tokens that steer Whisper's decoder, with their numbers in this model's vocabulary."""
    tok = tokenizer_of(model)
    stamps = tok.timestamp_begin
    rows = [
        (tok.sot, "empieza la transcripción: lo primero que lee el decodificador"),
        (tok.to_language_token("es"), f"uno de los {len(tok.all_language_tokens)} tokens de idioma (<|en|>, <|es|>…)"),
        (tok.transcribe, "tarea: escribir en el idioma que se oye"),
        (tok.translate, "tarea: traducir al inglés"),
        (tok.no_timestamps, "sin marcas de tiempo: solo texto"),
        (stamps, "marca de tiempo: 0,00 s desde el inicio de la ventana"),
        (stamps + 1, "marca de tiempo: 0,02 s (una cada 20 ms…)"),
        (stamps + 1500, "…hasta 30,00 s, el final de la ventana"),
        (tok.no_speech, "«aquí no hay voz»: su probabilidad es no_speech_prob"),
        (tok.sot_prev, "antes de él va el texto de la ventana anterior (contexto)"),
        (tok.eot, "fin del texto"),
    ]
    return Table(
        ({"token": tok.decode_with_timestamps([i]), "número": i, "para qué sirve": what} for i, what in rows),
        left=["token", "para qué sirve"],
    )


def language_probabilities(model, mel) -> dict[str, float]:
    """{language code: probability} for a 30-second log-Mel (n_mels × 3000), computed step by step.

    The encoder reads the spectrogram once; the decoder reads a single token, <|startoftranscript|>,
    and gives a logit to every token of the vocabulary. The language probabilities are the softmax of
    the logits of the language tokens only. It equals `model.detect_language`.
    """
    import torch  # heavy

    tok = tokenizer_of(model)
    batch = mel.to(model.device, next(model.parameters()).dtype).unsqueeze(0)  # (1, n_mels, 3000)
    first = torch.tensor([[tok.sot]], device=model.device)  # (1, 1): the decoder's only input
    with torch.no_grad():
        audio_features = model.embed_audio(batch)  # (1, 1500, n_audio_state): the encoder's output
        logits = model.logits(first, audio_features)[0, -1]  # (n_vocab,): one score per token
    language_logits = logits[list(tok.all_language_tokens)].float()
    return dict(zip(tok.all_language_codes, language_logits.softmax(dim=-1).tolist()))


def plot_language_probabilities(probabilities: dict[str, float], top: int = 10, title: str | None = None, ax=None):
    """Horizontal bars of the `top` most likely languages, the most likely on top. Returns the Axes."""
    import matplotlib.pyplot as plt

    from course_utils.speech import language_name

    ranked = sorted(probabilities.items(), key=lambda kv: kv[1], reverse=True)[:top][::-1]
    ax = ax or plt.subplots(figsize=(8, 0.35 * len(ranked) + 1.2))[1]
    labels = [f"{language_name(code)} ({code})" for code, _ in ranked]
    bars = ax.barh(labels, [p for _, p in ranked], color="tab:blue")
    ax.bar_label(bars, labels=[f"{p:.1%}" for _, p in ranked], padding=3, fontsize=8)
    ax.set(xlim=(0, 1.1), xlabel="Probabilidad", title=title or f"Los {len(ranked)} idiomas más probables")
    return ax
