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
