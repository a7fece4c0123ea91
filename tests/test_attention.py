"""course_utils.attention: hand-written attention against PyTorch's own, number by number."""

import math

import pytest
import torch

from course_utils import attention
from course_utils.errors import CourseError

TOL = 1e-5


@pytest.fixture
def qkv():
    g = torch.Generator().manual_seed(0)
    return tuple(torch.randn(2, 3, 7, 8, generator=g) for _ in range(3))  # batch, heads, tokens, dim


@pytest.mark.parametrize("causal", [False, True])
def test_hand_attention_matches_torch(qkv, causal):
    ours, weights = attention.scaled_dot_product_attention(*qkv, causal=causal)
    theirs = torch.nn.functional.scaled_dot_product_attention(*qkv, is_causal=causal)
    assert ours.shape == theirs.shape == (2, 3, 7, 8)
    assert torch.allclose(ours, theirs, atol=TOL)
    assert attention.compare_with_torch(*qkv, causal=causal) < TOL
    assert torch.allclose(weights.sum(-1), torch.ones(2, 3, 7), atol=TOL)


def test_hand_attention_with_more_keys_than_queries():
    g = torch.Generator().manual_seed(1)
    q, k, v = torch.randn(4, 16, generator=g), torch.randn(9, 16, generator=g), torch.randn(9, 5, generator=g)
    ours, weights = attention.scaled_dot_product_attention(q, k, v)
    assert weights.shape == (4, 9)
    assert torch.allclose(ours, torch.nn.functional.scaled_dot_product_attention(q, k, v), atol=TOL)


def test_causal_weights_never_look_ahead(qkv):
    _, weights = attention.scaled_dot_product_attention(*qkv, causal=True)
    above = torch.ones(7, 7, dtype=torch.bool).triu(1)
    assert torch.all(weights[..., above] == 0)
    assert torch.all(weights[..., 0, 0] == 1)  # the first token can only look at itself


def test_causal_mask_is_lower_triangular():
    assert attention.causal_mask(3).tolist() == [[True, False, False], [True, True, False], [True, True, True]]


def test_bad_shapes_raise_course_error():
    with pytest.raises(CourseError, match="Formas incompatibles"):
        attention.scaled_dot_product_attention(torch.zeros(3, 4), torch.zeros(3, 5), torch.zeros(3, 5))


@pytest.mark.parametrize("causal", [False, True])
def test_multi_head_matches_torch_with_same_weights(causal):
    torch.manual_seed(0)
    ours = attention.HandMultiHeadAttention(embed_dim=12, num_heads=3).eval()
    theirs = ours.to_torch()
    x = torch.randn(2, 6, 12)
    with torch.no_grad():
        out, weights = ours(x, causal=causal)
        ref_out, ref_weights = attention.torch_multihead(theirs, x, causal=causal)
    assert out.shape == (2, 6, 12) and weights.shape == (2, 3, 6, 6)
    assert torch.allclose(out, ref_out, atol=TOL)
    assert torch.allclose(weights, ref_weights, atol=TOL)


def test_multi_head_needs_divisible_heads():
    with pytest.raises(CourseError):
        attention.HandMultiHeadAttention(embed_dim=10, num_heads=3)


def test_positional_encoding_follows_the_formula():
    pe = attention.sinusoidal_positional_encoding(50, 16)
    assert pe.shape == (50, 16)
    for pos in (0, 1, 7, 49):
        for i in range(8):
            angle = pos / 10000 ** (2 * i / 16)
            assert pe[pos, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-6)
            assert pe[pos, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)


def test_positional_similarity_depends_only_on_distance():
    pe = attention.sinusoidal_positional_encoding(40, 32).double()
    gram = pe @ pe.T
    assert torch.allclose(gram.diagonal(3)[:-5], gram.diagonal(3)[5:], atol=1e-5)
    assert torch.allclose(gram.diagonal(), torch.full((40,), 16.0, dtype=torch.float64), atol=1e-4)


def test_positional_encoding_rejects_odd_dimensions():
    with pytest.raises(CourseError):
        attention.sinusoidal_positional_encoding(10, 7)


def test_tokenize_spanish_round_trip():
    ids, pieces = attention.tokenize("El gato duerme sobre la mesa.")
    assert len(ids) == len(pieces) > 3
    assert "".join(pieces) == "El gato duerme sobre la mesa."
    with pytest.raises(CourseError):
        attention.tokenize("   ")


def test_figures_have_spanish_labels():
    pe = attention.sinusoidal_positional_encoding(20, 8)
    fig = attention.plot_positional_encoding(pe)
    assert fig.axes[0].get_title() == "Codificación posicional sinusoidal"
    assert fig.axes[0].get_xlabel() == "Dimensión"
    weights = torch.full((2, 3, 3), 1 / 3)
    fig = attention.plot_attention(weights, ["a", " b", "c"])
    assert fig.axes[0].get_title() == "Cabeza 1"
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["a", "␣b", "c"]
    with pytest.raises(CourseError):
        attention.plot_attention(weights, ["a", "b"])


def test_spanish_splits_more_than_english_and_more_with_gpt2s_english_vocabulary():
    from whisper.tokenizer import get_encoding

    spanish, english = "El gato duerme sobre la mesa.", "The cat sleeps on the table."
    multilingual = {text: attention.tokenize(text)[1] for text in (spanish, english)}
    gpt2 = {text: attention.tokenize(text, multilingual=False)[1] for text in (spanish, english)}
    assert attention.tokenize(spanish, multilingual=False)[0] == get_encoding("gpt2").encode(spanish)
    assert len(multilingual[english]) == len(gpt2[english]) == 7  # every English word is one token
    assert len(multilingual[spanish]) == 9 and len(gpt2[spanish]) == 12
    assert [" g", "ato"] == multilingual[spanish][1:3]  # «gato» is not in either vocabulary
    assert " mesa" in multilingual[spanish] and " mesa" not in gpt2[spanish]


def test_split_and_merge_heads_give_each_head_a_contiguous_slice():
    x = torch.arange(12.0).view(1, 2, 6)
    heads = attention.split_heads(x, 3)
    assert heads.shape == (1, 3, 2, 2)
    assert heads[0, 1].tolist() == [[2.0, 3.0], [8.0, 9.0]]
    assert torch.equal(attention.merge_heads(heads), x)


def test_multi_head_by_hand_equals_torch_per_head():
    torch.manual_seed(3)
    layer = attention.HandMultiHeadAttention(embed_dim=16, num_heads=4).eval()
    x = torch.randn(2, 5, 16)
    with torch.no_grad():
        q, k, v = (attention.split_heads(proj(x), 4) for proj in (layer.q_proj, layer.k_proj, layer.v_proj))
        fused = torch.nn.functional.scaled_dot_product_attention(q, k, v)  # every head at once
        out = layer.out_proj(attention.merge_heads(fused))
        ref_out, ref_weights = attention.torch_multihead(layer.to_torch(), x)
        for h in range(4):
            _, weights = attention.scaled_dot_product_attention(q[:, h], k[:, h], v[:, h])
            assert torch.allclose(weights, ref_weights[:, h], atol=TOL)
    assert torch.allclose(out, ref_out, atol=TOL)


def test_scaling_experiment_variance_grows_with_d_and_the_softmax_saturates():
    rows = attention.scaling_experiment(dims=(4, 64, 1024), queries=2000)
    for row in rows:
        assert row["var_raw"] / row["d"] == pytest.approx(1, abs=0.1)
        assert row["var_scaled"] == pytest.approx(1, abs=0.1)
        assert 0.25 < row["max_scaled"] < 0.4
    assert [r["max_raw"] for r in rows] == sorted(r["max_raw"] for r in rows) and rows[-1]["max_raw"] > 0.95
    assert rows[-1]["grad_raw"] < rows[-1]["grad_scaled"] / 5
    one = attention.scaling_experiment(dims=(64,), queries=10, seed=4)[0]
    g = torch.Generator().manual_seed(4)
    q, k = torch.randn(10, 1, 64, generator=g), torch.randn(10, 10, 64, generator=g)
    assert one["var_raw"] == pytest.approx((q @ k.transpose(-2, -1)).var().item())


def test_rope_equals_transformers_llama_implementation():
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb

    config = LlamaConfig(hidden_size=64, num_attention_heads=4, rope_theta=500000.0)
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, 2, 4, 9, 16, generator=g)  # two (batch, heads, tokens, head_dim)
    positions = torch.tensor([0, 1, 2, 3, 10, 11, 50, 51, 1000])
    cos, sin = LlamaRotaryEmbedding(config)(q, positions[None].expand(2, -1))
    theirs_q, theirs_k = apply_rotary_pos_emb(q, k, cos, sin)
    # transformers forms the angles in float32 (ours in float64): at position 1000 they differ by ~1e-5.
    assert torch.allclose(attention.rotary_embedding(q, positions, base=500000.0), theirs_q, atol=1e-4)
    assert torch.allclose(attention.rotary_embedding(k, positions, base=500000.0), theirs_k, atol=1e-4)
    assert not torch.allclose(attention.rotary_embedding(q, positions), theirs_q, atol=1e-2)  # the base counts


def test_rope_score_depends_only_on_the_distance():
    g = torch.Generator().manual_seed(1)
    q, k = torch.randn(2, 32, generator=g)
    scores = attention.rope_scores(q, k, 40)
    for offset in range(-39, 40):
        diagonal = scores.diagonal(offset)
        assert torch.allclose(diagonal, diagonal[0].expand_as(diagonal), atol=1e-4)
    assert torch.allclose(scores[0, 0], q @ k, atol=1e-5)  # position 0 is not rotated
    rotated = attention.rotary_embedding(q.expand(5, -1), torch.arange(5))
    assert torch.allclose(rotated.norm(dim=-1), q.norm().expand(5), atol=1e-5)  # rotations keep lengths
    pe = attention.sinusoidal_positional_encoding(40, 32)
    added = (q + pe) @ (k + pe).T  # adding positions instead: not a function of m − n
    assert not torch.allclose(added.diagonal(0), added[0, 0].expand(40), atol=1e-2)
    with pytest.raises(CourseError):
        attention.rotary_embedding(torch.zeros(3, 7), torch.arange(3))


def test_position_similarity_by_distance_figure():
    pe = attention.sinusoidal_positional_encoding(100, 64)
    similarity = attention.cosine_similarity_table(pe)
    assert torch.allclose(similarity.diagonal(), torch.ones(100), atol=1e-5)
    assert torch.allclose(similarity.diagonal(7)[:40], similarity.diagonal(7)[40:80], atol=1e-4)
    fig = attention.plot_similarity_by_distance(pe)
    assert fig.axes[0].get_title() == "Similitud coseno entre posiciones"
    assert fig.axes[1].get_xlabel() == "Distancia entre posiciones (n − m)"
    first, *others = [line.get_ydata() for line in fig.axes[1].get_lines()[:3]]
    assert all(torch.allclose(torch.tensor(o), torch.tensor(first[: len(o)]), atol=1e-5) for o in others)


def test_scaling_and_rope_figures():
    fig = attention.plot_scaling(attention.scaling_experiment(dims=(4, 16), queries=50))
    assert [ax.get_title() for ax in fig.axes[:3]] == [
        "Varianza de las puntuaciones",
        "Peso máximo de la softmax (media)",
        "Tamaño de la derivada de la softmax",
    ]
    assert fig.axes[0].get_yscale() == "log"
    scores = attention.rope_scores(torch.ones(8), torch.ones(8), 6)
    fig = attention.plot_rope_scores(scores, scores + 1)
    assert fig.axes[0].get_title() == "Puntuación q_m · k_n con RoPE"
    assert fig.axes[-1].get_title() == "Las 36 parejas (m, n) según m − n" or fig.axes[1].get_title().startswith(
        "Las 36"
    )
