"""course_utils.patches: properties that hold for any ViT weights, checked on the stand-in."""

import itertools

import numpy as np
import pytest
import torch
from torch import nn

from course_utils import patches
from course_utils.errors import CourseError, ImageError
from course_utils.samples import sample_path

TOL = 1e-5


@pytest.fixture(scope="module")
def classifier():
    from course_utils.vision import load_classifier

    return load_classifier()


@pytest.fixture(scope="module")
def photo():
    return patches.square_image(sample_path("gato.jpg"))


def test_square_image_and_patch_sequence(photo):
    assert photo.size == (224, 224) and photo.mode == "RGB"
    array = np.asarray(photo)
    tiles = patches.to_patches(array, 16)
    assert tiles.shape == (196, 16, 16, 3)
    # Reading order: patch 1 is the second one of the top row, patch 14 starts the second row.
    assert np.array_equal(tiles[1], array[0:16, 16:32])
    assert np.array_equal(tiles[14], array[16:32, 0:16])
    assert np.array_equal(patches.from_patches(tiles, cols=14), array)


def test_rectangular_images_reassemble_too():
    array = np.random.default_rng(0).integers(0, 256, (32, 64, 3), dtype=np.uint8)
    tiles = patches.to_patches(array, 16)
    assert tiles.shape == (8, 16, 16, 3)
    assert np.array_equal(patches.from_patches(tiles, cols=4), array)


def test_image_not_divisible_by_patch_size_is_refused():
    with pytest.raises(ImageError, match="no se divide"):
        patches.to_patches(np.zeros((225, 224, 3)), 16)


def test_unknown_sample_is_a_course_error():
    with pytest.raises(CourseError, match="perro.jpg") as err:
        sample_path("perro.jpg")
    assert "gato.jpg" in err.value.hint and "hola.wav" in err.value.hint


def test_flattened_patches_are_channel_major():
    x = torch.randn(2, 3, 32, 48)
    flat = patches.flatten_patches(x, 16)
    assert flat.shape == (2, 6, 768)
    assert torch.equal(flat[1, 4], x[1, :, 16:32, 16:32].reshape(-1))  # row 1, column 1


def test_conv_equals_linear_for_any_conv():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 20, kernel_size=16, stride=16)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        as_conv = conv(x).flatten(2).transpose(1, 2)
        as_linear = patches.conv_as_linear(conv)(patches.flatten_patches(x, 16))
        # A channel-last flattening (a classic mistake) does not match: the test can tell.
        wrong = x.reshape(2, 3, 4, 16, 4, 16).permute(0, 2, 4, 3, 5, 1).reshape(2, 16, 768)
        as_wrong = patches.conv_as_linear(conv)(wrong)
    assert torch.allclose(as_conv, as_linear, atol=TOL)
    assert not torch.allclose(as_conv, as_wrong, atol=1e-2)


def test_conv_with_overlap_is_not_a_patch_embedding():
    with pytest.raises(Exception, match="parches"):
        patches.conv_as_linear(nn.Conv2d(3, 8, kernel_size=16, stride=8))


def test_configured_vit_patch_embedding_conv_equals_linear(classifier, photo):
    x = patches.pixel_values(classifier, photo)
    assert x.shape == (1, 3, 224, 224)
    as_conv, as_linear = patches.patch_embedding_both_ways(classifier.model, x)
    hidden = classifier.model.config.hidden_size
    assert as_conv.shape == as_linear.shape == (1, 196, hidden)
    assert (as_conv - as_linear).abs().max().item() < TOL
    # And it is what the model itself computes.
    conv = classifier.model.vit.embeddings.patch_embeddings
    with torch.no_grad():  # the model's own conv, in its own precision (half on a GPU)
        model_says = conv(x.to(conv.projection.weight.dtype))
    assert as_conv.dtype == torch.float64
    # float32 on CPU agrees to TOL; half precision keeps about 3 significant digits.
    atol = TOL if model_says.dtype == torch.float32 else 2e-2 * as_conv.abs().max().item()
    assert torch.allclose(model_says.double().cpu(), as_conv, atol=atol)


def test_position_similarity(classifier):
    sim = patches.position_similarity(classifier.model.vit.embeddings.position_embeddings)
    assert sim.shape == (14, 14, 14, 14)
    assert torch.allclose(sim[3, 5, 3, 5], torch.tensor(1.0), atol=TOL)
    assert torch.allclose(sim[3, 5, 7, 1], sim[7, 1, 3, 5], atol=TOL)
    assert sim.abs().max() <= 1 + TOL


def test_attentions_rollout_and_cls_maps(classifier, photo, capsys):
    layers = patches.attentions(classifier, photo)
    assert "Aviso: Modelo de prueba" in capsys.readouterr().out
    heads = classifier.model.config.num_attention_heads
    assert len(layers) == classifier.model.config.num_hidden_layers
    assert all(a.shape == (heads, 197, 197) for a in layers)
    rollout = patches.attention_rollout(layers)
    assert rollout.shape == (197, 197)
    assert torch.allclose(rollout.sum(-1), torch.ones(197), atol=TOL)
    maps = patches.cls_attention(layers[-1])
    assert maps.shape == (heads, 14, 14)
    assert maps[1, 2, 3] == layers[-1][1, 0, 1 + 2 * 14 + 3]


def test_rollout_formula_on_a_small_example():
    g = torch.Generator().manual_seed(0)
    layers = [torch.rand(2, 4, 4, generator=g).softmax(-1) for _ in range(3)]

    def residual(a):
        a = 0.5 * a.mean(0) + 0.5 * torch.eye(4)
        return a / a.sum(-1, keepdim=True)

    expected = residual(layers[2]) @ residual(layers[1]) @ residual(layers[0])
    assert torch.allclose(patches.attention_rollout(layers), expected, atol=1e-6)
    assert not torch.allclose(expected, residual(layers[0]) @ residual(layers[1]) @ residual(layers[2]), atol=1e-4)
    # Tokens that only look at themselves keep all their information where it was.
    assert torch.allclose(patches.attention_rollout([torch.eye(4)[None]] * 3), torch.eye(4))


def test_figures_have_spanish_titles(classifier, photo):
    layers = patches.attentions(classifier, photo)
    figures = [
        patches.plot_patch_grid(photo),
        patches.plot_patch_sequence(photo),
        patches.plot_position_similarity(torch.rand(14, 14, 14, 14)),
        patches.plot_cls_attention(photo, patches.cls_attention(layers[-1])),
        patches.plot_rollout(photo, patches.attention_rollout(layers)),
    ]
    titles = [f.axes[0].get_title() or f._suptitle.get_text() for f in figures]
    assert titles[0] == "Imagen de 224×224 píxeles"
    assert figures[0].axes[1].get_title() == "196 parches de 16×16 (14×14)"
    assert "196 parches" in titles[1]
    assert titles[2] == "Similitud coseno entre embeddings de posición"
    assert figures[2].axes[0].get_xlabel() == "columna del parche"
    assert titles[3] == "Cabeza 1"
    assert figures[4].axes[1].get_title() == "Atención acumulada (rollout) del token CLS"


def _heat_layers(fig):
    """The attention layer of every panel (the second image of each axes; the first is the photo)."""
    return [ax.get_images()[1] for ax in fig.axes if len(ax.get_images()) == 2]


def test_cls_attention_of_every_layer_on_one_shared_scale(classifier, photo):
    layers = patches.attentions(classifier, photo)
    heads = classifier.model.config.num_attention_heads
    fig = patches.plot_cls_attention_layers(photo, layers)
    heat = _heat_layers(fig)
    assert len(heat) == len(layers) * (1 + heads)  # every layer: the mean, then every head
    assert len({(h.norm.vmin, h.norm.vmax) for h in heat}) == 1, "one colour scale for all panels"
    largest = max(float(patches.cls_attention(a).max()) for a in layers)
    # The largest weight of any head sets the top of the scale, never below twice the uniform share.
    assert heat[0].norm.vmax == pytest.approx(max(largest, 2 / 196))
    assert any(ax.get_label() == "<colorbar>" for ax in fig.axes)
    assert [fig.axes[c].get_title() for c in range(2)] == ["media de las cabezas", "cabeza 1"]
    assert fig.axes[(1 + heads)].get_ylabel() == "capa 2"
    mean = patches.cls_attention(layers[0]).mean(0)
    assert np.allclose(heat[0].get_array(), np.maximum(mean.numpy(), heat[0].norm.vmin))


def test_a_uniform_head_looks_uniform_next_to_a_sharp_one(photo):
    uniform = torch.full((1, 197, 197), 1 / 197)
    sharp = torch.zeros(1, 197, 197)
    sharp[0, :, 30] = 1.0  # every token, the CLS too, looks at patch 29 only
    fig = patches.plot_cls_attention(photo, patches.cls_attention(torch.cat([uniform, sharp])))
    flat, peaked = (h.to_rgba(h.get_array()) for h in _heat_layers(fig))
    assert len(np.unique(flat.reshape(-1, 4), axis=0)) == 1  # one colour: the uniform head is flat
    assert not np.allclose(flat[0, 0], peaked[2, 1])  # the sharp head's peak is another colour
    assert np.allclose(peaked[0, 0], peaked[0, 1]) and not np.allclose(peaked[0, 0], flat[0, 0])
    assert any(ax.get_label() == "<colorbar>" for ax in fig.axes)


def test_synthetic_squares_labels_match_the_square():
    images, labels = patches.synthetic_squares(50, seed=3)
    assert images.shape == (50, 3, 32, 32) and images.min() >= -1 and images.max() == 1
    for img, label in zip(images, labels):
        rows, cols = torch.nonzero(img[0] == 1, as_tuple=True)
        centre = (rows.float().mean() + 0.5, cols.float().mean() + 0.5)
        assert label == (centre[0] >= 16) * 2 + (centre[1] >= 16)
    assert np.array_equal(patches.to_picture(images[0])[..., 0], ((images[0, 0] + 1) * 127.5).round().byte().numpy())


def test_learning_rate_warms_up_then_decays_to_zero():
    factors = [patches.warmup_cosine(step, 250) for step in range(250)]
    assert factors[0] == pytest.approx(1 / 25) and factors[24] == factors[25] == pytest.approx(1.0)
    assert all(a >= b for a, b in itertools.pairwise(factors[25:]))
    assert factors[-1] < 1e-3


def square_hit_rate(model, images) -> float:
    """Share of `images` whose last-layer CLS attention (mean of the heads) peaks on a patch of the square."""
    with torch.no_grad():
        batch = model(pixel_values=images, output_attentions=True).attentions
    hits = 0
    for i in range(len(images)):
        looked_at = int(patches.cls_attention(batch[-1][i]).mean(0).argmax())
        square = (images[i, 0] == 1).float().reshape(4, 8, 4, 8).sum((1, 3)).reshape(-1)
        hits += bool(square[looked_at] > 0)
    return hits / len(images)


def test_micro_vit_learns_and_its_cls_attention_finds_the_square():
    model, accuracy = patches.train_micro_vit()
    assert accuracy >= 0.95  # on every CPU kernel path and several seeds: tests/test_cpu_paths.py
    images, _ = patches.synthetic_squares(40, seed=7)
    assert square_hit_rate(model, images) >= 0.9
    with torch.no_grad():
        batch = model(pixel_values=images, output_attentions=True).attentions
    assert all(patches.attention_rollout([a[i] for a in batch]).shape == (17, 17) for i in range(len(images)))
    assert torch.equal(patches.model_attentions(model, images, index=5)[-1], batch[-1][5])
