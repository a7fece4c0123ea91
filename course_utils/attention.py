"""Transformer internals written by hand, small enough to read, and checked against PyTorch.

Notebook 02 shows each idea and calls these helpers; tests/test_attention.py checks every one of
them numerically against `torch.nn.functional.scaled_dot_product_attention` and
`torch.nn.MultiheadAttention`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from course_utils.errors import CourseError


def tokenize(text: str) -> tuple[list[int], list[str]]:
    """Split `text` with Whisper's multilingual tokenizer (ships with openai-whisper, no download).

    Returns the token ids and the text piece of each token.
    """
    from whisper.tokenizer import get_tokenizer

    if not isinstance(text, str) or not text.strip():
        raise CourseError("No hay texto que dividir en tokens.", "Escribe una frase entre comillas.")
    tokenizer = get_tokenizer(multilingual=True)
    ids = tokenizer.encode(text)
    return ids, [tokenizer.decode([i]) for i in ids]


def causal_mask(n: int) -> torch.Tensor:
    """(n, n) boolean mask: True where query i may look at key j, that is j <= i."""
    return torch.ones(n, n, dtype=torch.bool).tril()


def scaled_dot_product_attention(q, k, v, causal: bool = False):
    """softmax(q·kᵀ / √d) · v over the last two dimensions. Returns (output, weights)."""
    _check_qkv(q, k, v)
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if causal:
        mask = causal_mask(scores.shape[-1]).to(scores.device)[: scores.shape[-2]]
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = scores.softmax(dim=-1)
    return weights @ v, weights


def _check_qkv(q, k, v) -> None:
    if not all(isinstance(t, torch.Tensor) for t in (q, k, v)):
        raise CourseError(
            "q, k y v tienen que ser tensores de PyTorch.", "Crea los tres con torch.tensor o torch.randn."
        )
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2] or q.dim() < 2:
        raise CourseError(
            f"Formas incompatibles: q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}.",
            "q y k deben tener la misma última dimensión, y k y v el mismo número de tokens.",
        )


def max_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest absolute element-wise difference, as a float."""
    return (a - b).abs().max().item()


def compare_with_torch(q, k, v, causal: bool = False) -> float:
    """Max difference between our attention and PyTorch's fused one on the same inputs."""
    ours, _ = scaled_dot_product_attention(q, k, v, causal=causal)
    theirs = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)
    return max_difference(ours, theirs)


class HandMultiHeadAttention(nn.Module):
    """Multi-head self-attention from four Linear layers and the function above.

    `embed_dim` is split into `num_heads` heads of `embed_dim // num_heads` dimensions each.
    """

    def __init__(self, embed_dim: int, num_heads: int):
        super().__init__()
        if embed_dim % num_heads:
            raise CourseError(
                f"{embed_dim} dimensiones no se reparten en {num_heads} cabezas iguales.",
                "Elige un número de cabezas que divida a embed_dim.",
            )
        self.num_heads, self.head_dim = num_heads, embed_dim // num_heads
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(embed_dim, embed_dim) for _ in range(4))

    def forward(self, x: torch.Tensor, causal: bool = False):
        """x: (batch, tokens, embed_dim) → (output like x, weights (batch, heads, tokens, tokens))."""
        batch, n, _ = x.shape

        def heads(t):  # (batch, n, embed) → (batch, heads, n, head_dim)
            return t.view(batch, n, self.num_heads, self.head_dim).transpose(1, 2)

        out, weights = scaled_dot_product_attention(
            heads(self.q_proj(x)), heads(self.k_proj(x)), heads(self.v_proj(x)), causal=causal
        )
        return self.out_proj(out.transpose(1, 2).reshape(batch, n, -1)), weights

    @torch.no_grad()
    def to_torch(self) -> nn.MultiheadAttention:
        """An `nn.MultiheadAttention` (batch_first) holding exactly these weights."""
        embed_dim = self.out_proj.in_features
        mha = nn.MultiheadAttention(embed_dim, self.num_heads, batch_first=True)
        mha.in_proj_weight.copy_(torch.cat([self.q_proj.weight, self.k_proj.weight, self.v_proj.weight]))
        mha.in_proj_bias.copy_(torch.cat([self.q_proj.bias, self.k_proj.bias, self.v_proj.bias]))
        mha.out_proj.weight.copy_(self.out_proj.weight)
        mha.out_proj.bias.copy_(self.out_proj.bias)
        return mha.eval()


def torch_multihead(mha: nn.MultiheadAttention, x: torch.Tensor, causal: bool = False):
    """Run PyTorch's layer as self-attention; returns (output, per-head weights) like ours."""
    n = x.shape[1]
    mask = ~causal_mask(n) if causal else None  # PyTorch's boolean mask marks what is NOT allowed
    return mha(x, x, x, attn_mask=mask, need_weights=True, average_attn_weights=False)


def sinusoidal_positional_encoding(length: int, dim: int, base: float = 10000.0) -> torch.Tensor:
    """(length, dim) table of "Attention Is All You Need": sin on even columns, cos on odd ones.

    PE[pos, 2i] = sin(pos / base^(2i/dim)),  PE[pos, 2i+1] = cos(pos / base^(2i/dim)).
    """
    if length < 1 or dim < 2 or dim % 2:
        raise CourseError(
            f"No puedo crear una codificación de {length} posiciones × {dim} dimensiones.",
            "Usa al menos una posición y un número par de dimensiones.",
        )
    position = torch.arange(length, dtype=torch.float64)[:, None]
    frequency = base ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)
    pe = torch.empty(length, dim, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(position * frequency)
    pe[:, 1::2] = torch.cos(position * frequency)
    return pe.float()


def plot_positional_encoding(pe: torch.Tensor, dims: tuple[int, ...] = (0, 1, 4, 10)):
    """Heatmap of the table and a few of its columns as curves. Returns the Figure."""
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
    image = left.imshow(pe.numpy(), aspect="auto", cmap="RdBu", vmin=-1, vmax=1)
    left.set(title="Codificación posicional sinusoidal", xlabel="Dimensión", ylabel="Posición del token")
    fig.colorbar(image, ax=left, label="Valor")
    for d in dims:
        if d < pe.shape[1]:
            right.plot(pe[:, d].numpy(), label=f"dimensión {d}")
    right.set(title="Algunas dimensiones según la posición", xlabel="Posición del token", ylabel="Valor")
    right.legend(loc="lower left")
    fig.tight_layout()
    plt.close(fig)  # shown once by the notebook's display, not twice
    return fig


def plot_attention(weights: torch.Tensor, tokens: list[str], title: str = "Pesos de atención"):
    """Heatmap of one (queries × keys) weight matrix, or one panel per head for (heads, n, n)."""
    import matplotlib.pyplot as plt

    weights = weights.detach().float().cpu()
    panels = weights if weights.dim() == 3 else weights[None]
    n = len(tokens)
    if panels.shape[-2:] != (n, n):
        raise CourseError(
            f"Hay {n} etiquetas para una matriz de {tuple(panels.shape[-2:])}.", "Pasa una etiqueta por token."
        )
    labels = [repr(t.replace(" ", "␣"))[1:-1] for t in tokens]
    size = 1.5 + 0.4 * n
    fig, axes = plt.subplots(
        1, len(panels), figsize=(size * len(panels) + 1, size + 0.5), squeeze=False, layout="constrained"
    )
    top = max(float(panels.max()), 1e-6)  # the full colour range even when no weight is near 1
    for h, (ax, panel) in enumerate(zip(axes[0], panels)):
        image = ax.imshow(panel.numpy(), cmap="viridis", vmin=0, vmax=top)
        ax.set_xticks(range(n), labels, rotation=60, ha="right")
        ax.set_yticks(range(n), labels if h == 0 else [])
        ax.set(xlabel="Token al que se atiende (clave)", title=f"Cabeza {h + 1}" if len(panels) > 1 else title)
    axes[0, 0].set_ylabel("Token que pregunta (consulta)")
    if len(panels) > 1:
        fig.suptitle(title)
    fig.colorbar(image, ax=axes[0].tolist(), label="Peso (cada fila suma 1)", shrink=0.9)
    plt.close(fig)
    return fig


def show_source(obj):
    """The source code of a helper, syntax-highlighted in the notebook."""
    import inspect

    from IPython.display import Code

    return Code(inspect.getsource(obj), language="python")
