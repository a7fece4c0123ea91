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

FIGURE_WIDTH = 10.0  # inches: about the width of a JupyterLab cell (inline figures are 100 px per inch)


def tokenize(text: str, multilingual: bool = True) -> tuple[list[int], list[str]]:
    """Split `text` with one of Whisper's tokenizers (they ship with openai-whisper, no download).

    multilingual=True: the vocabulary of the multilingual models; False: that of the English-only
    models (`base.en`…), which is GPT-2's as it is. Returns the token ids and the text of each token.
    """
    from whisper.tokenizer import get_tokenizer

    if not isinstance(text, str) or not text.strip():
        raise CourseError("No hay texto que dividir en tokens.", "Escribe una frase entre comillas.")
    tokenizer = get_tokenizer(multilingual=multilingual)
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


def softmax_gradient_size(scores: torch.Tensor) -> float:
    """Mean norm of the softmax's Jacobian, diag(w) − w·wᵀ, over the rows of `scores` (rows, keys)."""
    w = scores.softmax(dim=-1)  # (rows, keys)
    jacobian = torch.diag_embed(w) - w[:, :, None] * w[:, None, :]  # (rows, keys, keys)
    return jacobian.norm(dim=(-2, -1)).mean().item()


def scaling_experiment(dims=(4, 16, 64, 256, 1024), queries: int = 1000, keys: int = 10, seed: int = 0):
    """Why √d: random q and k with unit-variance entries, scores with and without the division.

    For each d: the variance of q·k (≈ d) and of q·k/√d (≈ 1), the mean largest softmax weight of a
    row, and the mean size of the softmax's derivative (softmax_gradient_size). Returns one dict per d.
    """
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for d in dims:
        q = torch.randn(queries, 1, d, generator=generator)  # (queries, 1, d)
        k = torch.randn(queries, keys, d, generator=generator)  # (queries, keys, d)
        raw = (q @ k.transpose(-2, -1)).squeeze(1)  # (queries, keys)
        scaled = raw / math.sqrt(d)
        rows.append(
            {
                "d": d,
                "var_raw": raw.var().item(),
                "var_scaled": scaled.var().item(),
                "max_raw": raw.softmax(dim=-1).amax(dim=-1).mean().item(),
                "max_scaled": scaled.softmax(dim=-1).amax(dim=-1).mean().item(),
                "grad_raw": softmax_gradient_size(raw),
                "grad_scaled": softmax_gradient_size(scaled),
                "keys": keys,
            }
        )
    return rows


def split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """(batch, tokens, embed) → (batch, heads, tokens, embed // heads): head h gets a contiguous slice."""
    batch, n, embed_dim = x.shape
    x = x.view(batch, n, num_heads, embed_dim // num_heads)  # (batch, tokens, heads, head_dim)
    return x.transpose(1, 2)  # (batch, heads, tokens, head_dim)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(batch, heads, tokens, head_dim) → (batch, tokens, heads · head_dim): undoes split_heads."""
    batch, num_heads, n, head_dim = x.shape
    x = x.transpose(1, 2)  # (batch, tokens, heads, head_dim), not contiguous any more
    return x.reshape(batch, n, num_heads * head_dim)  # (batch, tokens, embed)


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
        q = split_heads(self.q_proj(x), self.num_heads)  # (batch, heads, tokens, head_dim)
        k = split_heads(self.k_proj(x), self.num_heads)  # (batch, heads, tokens, head_dim)
        v = split_heads(self.v_proj(x), self.num_heads)  # (batch, heads, tokens, head_dim)
        out, weights = scaled_dot_product_attention(q, k, v, causal=causal)  # out like q
        return self.out_proj(merge_heads(out)), weights  # (batch, tokens, embed_dim)

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


def rotary_embedding(x: torch.Tensor, positions: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """RoPE (Su et al., 2021) as Llama applies it to q and k: rotate each pair of dimensions.

    x: (..., tokens, d) with d even; positions: (tokens,). Dimension i is paired with i + d/2 (the
    layout of transformers' Llama code; the paper pairs 2i with 2i+1, the same up to an order of the
    dimensions) and the pair is rotated by the angle position · base^(−2i/d).
    """
    d = x.shape[-1]
    if d % 2 or positions.shape[-1] != x.shape[-2]:
        raise CourseError(
            f"No puedo rotar {tuple(x.shape)} con {positions.shape[-1]} posiciones.",
            "La última dimensión debe ser par y debe haber una posición por token.",
        )
    half = d // 2
    frequency = base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)  # (d/2,)
    angles = positions.double()[:, None] * frequency  # (tokens, d/2)
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    first, second = x[..., :half], x[..., half:]  # the two coordinates of every pair
    return torch.cat([first * cos - second * sin, first * sin + second * cos], dim=-1)


def rope_scores(q: torch.Tensor, k: torch.Tensor, length: int, base: float = 10000.0) -> torch.Tensor:
    """(length, length) table of rope(q at position m) · rope(k at position n), for one q and one k (d,)."""
    positions = torch.arange(length)
    queries = rotary_embedding(q.expand(length, -1), positions, base)  # (length, d): q at every position
    keys = rotary_embedding(k.expand(length, -1), positions, base)  # (length, d): k at every position
    return queries @ keys.T  # [m, n] = q_m · k_n


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


def cosine_similarity_table(pe: torch.Tensor) -> torch.Tensor:
    """(positions, positions) cosine similarity between every pair of rows of a position table."""
    unit = nn.functional.normalize(pe.double(), dim=-1)
    return (unit @ unit.T).float()


def plot_similarity_by_distance(pe: torch.Tensor, starts: tuple[int, ...] = (0, 20, 50)):
    """Cosine similarity of the positions: the whole table, and against distance from a few positions."""
    import matplotlib.pyplot as plt

    similarity = cosine_similarity_table(pe)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5), layout="constrained")
    image = left.imshow(similarity.numpy(), cmap="RdBu", vmin=-1, vmax=1)
    left.set(title="Similitud coseno entre posiciones", xlabel="Posición n", ylabel="Posición m")
    fig.colorbar(image, ax=left, label="Similitud coseno")
    for start in starts:
        if start < len(pe):
            distance = torch.arange(len(pe) - start)
            right.plot(distance.numpy(), similarity[start, start:].numpy(), label=f"desde la posición {start}")
    right.set(
        title="Similitud según la distancia",
        xlabel="Distancia entre posiciones (n − m)",
        ylabel="Similitud coseno",
    )
    right.axhline(0, color="grey", linewidth=0.5)
    right.legend()
    plt.close(fig)
    return fig


def plot_scaling(rows: list[dict]):
    """The √d experiment (rows of scaling_experiment): score variance, largest weight and gradient against d."""
    import matplotlib.pyplot as plt

    d = [r["d"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(12, 4), layout="constrained")
    panels = [
        ("var", "Varianza de las puntuaciones", "Varianza", "log"),
        ("max", "Peso máximo de la softmax (media)", "Peso de la clave más votada", "linear"),
        ("grad", "Tamaño de la derivada de la softmax", "Norma de diag(w) − w·wᵀ", "linear"),
    ]
    for ax, (key, title, ylabel, yscale) in zip(axes, panels):
        ax.plot(d, [r[f"{key}_raw"] for r in rows], "o-", label="q·k (sin dividir)")
        ax.plot(d, [r[f"{key}_scaled"] for r in rows], "s-", label="q·k / √d")
        ax.set(title=title, xlabel="Dimensión d", ylabel=ylabel, xscale="log", yscale=yscale)
    axes[0].plot(d, d, ":", color="grey", label="varianza = d")
    axes[1].axhline(1 / rows[0].get("keys", 10), color="grey", linestyle=":", label="reparto uniforme")
    axes[1].set_ylim(0, 1.05)
    for ax in axes:
        ax.legend()
    plt.close(fig)
    return fig


def plot_rope_scores(scores: torch.Tensor, added: torch.Tensor | None = None):
    """RoPE: the table of scores q_m · k_n, and every score against m − n (one value per distance).

    `added`, optional: the same table with the positions added to q and k instead (sinusoidal), for contrast.
    """
    import matplotlib.pyplot as plt

    length = len(scores)
    m, n = torch.meshgrid(torch.arange(length), torch.arange(length), indexing="ij")
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5), layout="constrained")
    image = left.imshow(scores.numpy(), cmap="RdBu", norm=_centred(scores))
    left.set(title="Puntuación q_m · k_n con RoPE", xlabel="Posición n de la clave", ylabel="Posición m de la consulta")
    fig.colorbar(image, ax=left, label="q_m · k_n")
    if added is not None:
        right.plot((m - n).flatten().numpy(), added.flatten().numpy(), ".", color="grey", alpha=0.4, markersize=3)
        right.plot([], [], ".", color="grey", label="posiciones sumadas (sinusoidales)")
    right.plot((m - n).flatten().numpy(), scores.flatten().numpy(), ".", color="C3", markersize=4, label="RoPE")
    right.set(
        title=f"Las {length * length} parejas (m, n) según m − n",
        xlabel="Distancia m − n",
        ylabel="Puntuación q_m · k_n",
    )
    right.legend()
    plt.close(fig)
    return fig


def _centred(values: torch.Tensor):
    from matplotlib.colors import Normalize

    top = max(float(values.abs().max()), 1e-6)
    return Normalize(vmin=-top, vmax=top)


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
    columns = min(len(panels), 2)  # several heads in rows of two: the figure fits a notebook cell's width
    rows = -(-len(panels) // columns)
    size = min(1.5 + 0.4 * n, (FIGURE_WIDTH - 1.2) / columns)
    fig, axes = plt.subplots(
        rows, columns, figsize=(size * columns + 1.2, size * rows + 0.8), squeeze=False, layout="constrained"
    )
    top = max(float(panels.max()), 1e-6)  # the full colour range even when no weight is near 1
    for h, (ax, panel) in enumerate(zip(axes.flat, panels)):
        image = ax.imshow(panel.numpy(), cmap="viridis", vmin=0, vmax=top)
        ax.set_xticks(range(n), labels, rotation=60, ha="right")
        ax.set_yticks(range(n), labels if h % columns == 0 else [])
        ax.set(title=f"Cabeza {h + 1}" if len(panels) > 1 else title)
        if h >= len(panels) - columns:  # the bottom row says what the columns are
            ax.set_xlabel("Token al que se atiende (clave)")
        if h % columns == 0:
            ax.set_ylabel("Token que pregunta (consulta)")
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    if len(panels) > 1:
        fig.suptitle(title, fontsize="large")
    fig.colorbar(image, ax=axes.ravel().tolist(), label="Peso (cada fila suma 1)", shrink=0.9)
    plt.close(fig)
    return fig


def show_source(obj):
    """The source code of a helper, syntax-highlighted in the notebook."""
    import inspect

    from IPython.display import Code

    return Code(inspect.getsource(obj), language="python")
