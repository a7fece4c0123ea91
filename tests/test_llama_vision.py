"""course_utils.llama_vision: tile layouts against transformers' own Mllama processor; the tiny model's shapes."""

import json
import warnings

import numpy as np
import pytest
import torch
from transformers import MllamaImageProcessorPil
from transformers.models.mllama import modeling_mllama

from course_utils import llama_vision as lv
from course_utils.errors import CourseError, ImageError, OptionError
from course_utils.samples import sample_path

# (width, height): the course's photos, squares, both sides of a tile, tall and wide ones, huge and tiny ones.
SIZES = [
    (451, 300),
    (600, 400),
    (512, 512),
    (640, 427),
    (560, 560),
    (561, 560),
    (560, 561),
    (400, 1000),
    (1000, 400),
    (2240, 560),
    (560, 2240),
    (3000, 600),
    (4000, 3000),
    (1120, 840),
    (1, 1),
    (100, 50),
    (1700, 1700),
]
PHOTOS = ["gato.jpg", "cafe.jpg", "astronauta.jpg", "cohete.jpg"]


@pytest.fixture(scope="module")
def processor():
    return lv.image_processor()


@pytest.fixture(scope="module")
def tiny():
    return lv.build_tiny_model()


def test_the_processor_has_the_published_settings_and_no_torchvision_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the torchvision fallback warns; the PIL class is asked for by name
        processor = lv.image_processor()
    assert isinstance(processor, MllamaImageProcessorPil)
    published = lv.PUBLISHED_PREPROCESSOR
    assert processor.size["height"] == processor.size["width"] == published["size"]["height"] == 560
    assert processor.max_image_tiles == published["max_image_tiles"] == 4
    assert list(processor.image_mean) == published["image_mean"] and list(processor.image_std) == published["image_std"]
    assert processor.rescale_factor == pytest.approx(1 / 255) and int(processor.resample) == 2  # bilinear
    # The module's copy of the published file is valid JSON with the keys of a preprocessor_config.json.
    assert json.loads(json.dumps(published))["image_processor_type"] == "MllamaImageProcessor"


def test_published_configuration():
    config = lv.published_config()
    assert config.text_config.cross_attention_layers == [3, 8, 13, 18, 23, 28, 33, 38]
    assert config.text_config.num_hidden_layers == 40 and config.text_config.hidden_size == 4096
    vision = config.vision_config
    assert (vision.image_size, vision.patch_size, vision.max_num_tiles) == (560, 14, 4)
    assert vision.vision_output_dim == vision.hidden_size * (1 + len(vision.intermediate_layers_indices)) == 7680
    assert config.image_token_index == lv.SPECIAL_TOKEN_IDS["<|image|>"] == config.text_config.vocab_size
    # transformers documents its defaults as those of Llama-3.2-11B-Vision: the same numbers.
    defaults = type(config)()
    assert defaults.text_config.cross_attention_layers == config.text_config.cross_attention_layers
    assert defaults.vision_config.intermediate_layers_indices == vision.intermediate_layers_indices
    table = lv.published_numbers()
    assert any(row["11B publicado"] == "[3, 8, 13, 18, 23, 28, 33, 38]" for row in table)
    assert "<table>" in table._repr_html_()


def test_supported_layouts_are_rows_by_columns(processor):
    assert lv.supported_layouts(4) == [(1, 1), (1, 2), (1, 3), (1, 4), (2, 1), (2, 2), (3, 1), (4, 1)]
    assert lv.aspect_ratio_id((1, 1)) == 1 and lv.aspect_ratio_id((2, 1)) == 5
    # A tall image gets two tiles one above the other: (rows, columns) = (2, 1), and its id says so.
    out = processor(np.zeros((1000, 400, 3), dtype=np.uint8), return_tensors="pt")
    assert lv.tile_layout(1000, 400) == (2, 1) and out["aspect_ratio_ids"].item() == 5


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_layout_matches_the_processor_output(processor, width, height):
    got = lv.processor_summary(processor(np.zeros((height, width, 3), dtype=np.uint8), return_tensors="pt"))
    assert got == lv.expected_output(height, width, processor)


@pytest.mark.parametrize("name", PHOTOS)
def test_the_course_photos(processor, name):
    picture = lv.process(sample_path(name), processor)
    from PIL import Image

    with Image.open(sample_path(name)) as image:
        width, height = image.size
    assert lv.processor_summary(picture) == lv.expected_output(height, width, processor)
    assert picture["pixel_values"].dtype == torch.float32


def test_other_tile_sizes_and_tile_counts():
    processor = lv.image_processor(size={"height": 448, "width": 448}, max_image_tiles=6)
    for width, height in [(448, 448), (1344, 448), (900, 2000), (300, 200)]:
        got = lv.processor_summary(processor(np.zeros((height, width, 3), dtype=np.uint8), return_tensors="pt"))
        assert got == lv.expected_output(height, width, processor)


def test_layout_table_says_every_row_matches(processor):
    table = lv.layout_table([(451, 300), (400, 1000), (2240, 560)], processor)
    assert [row["¿coincide con el procesador?"] for row in table] == ["sí", "sí", "sí"]
    assert [row["teselas (filas×columnas)"] for row in table] == ["1×1", "2×1", "1×4"]


def test_canvas_puts_the_tiles_back(processor):
    # 600×400 → 1×2 tiles, the photo kept at 600×400 in the top-left corner and black padding around it.
    layout = lv.tile_layout(400, 600)
    assert layout == (1, 2) and lv.resized_size(400, 600, layout) == (400, 600)
    canvas = lv.tiles_to_canvas(lv.process(sample_path("cafe.jpg"), processor)["pixel_values"], layout, processor)
    assert canvas.shape == (560, 1120, 3)
    assert np.allclose(canvas[400:], 0.0, atol=1e-4) and np.allclose(canvas[:, 600:], 0.0, atol=1e-4)
    with __import__("PIL").Image.open(sample_path("cafe.jpg")) as image:
        original = np.asarray(image.convert("RGB"), dtype=np.float64) / 255
    assert np.abs(canvas[:400, :600] - original).max() < 1e-4  # no resize: the same pixels, normalization undone


def test_bad_sizes_and_images_get_spanish_errors():
    for height, width in [(0, 10), (10, -1), (1.5, 10), (True, 10)]:
        with pytest.raises(CourseError, match="entero"):
            lv.tile_layout(height, width)
    with pytest.raises(OptionError, match="disposición"):
        lv.aspect_ratio_id((2, 3))
    with pytest.raises(ImageError):
        lv.process(b"esto no es una imagen")


def test_vision_shapes_of_the_published_model():
    shapes = lv.vision_shapes(lv.published_config().vision_config, 4096)
    assert shapes == {
        "patches_per_tile": 1600,
        "tokens_per_tile": 1601,
        "padded_tokens_per_tile": 1608,
        "vision_output_shape": (1, 1, 4, 1601, 7680),
        "projected_shape": (1, 1, 4, 1601, 4096),
        "vision_tokens": 6404,
    }


def test_tiny_model_layout_and_notice(capsys):
    model = lv.build_tiny_model(seed=1)
    assert "Aviso:" in capsys.readouterr().out  # a stand-in says it is one
    layers = model.model.language_model.layers
    kinds = [
        "cross" if isinstance(layer, modeling_mllama.MllamaCrossAttentionDecoderLayer) else "self" for layer in layers
    ]
    assert [i for i, k in enumerate(kinds) if k == "cross"] == model.config.text_config.cross_attention_layers == [3, 8]
    assert lv.layer_kinds(model).count("atención cruzada") == 2
    assert lv.layer_kinds(lv.published_config()).count("atención cruzada") == 8
    gates = [p for n, p in model.named_parameters() if "gate" in n and p.numel() == 1]  # not the MLPs' gate_proj
    assert gates and all(torch.all(g == lv.GATE) for g in gates)


def test_forward_shapes_match_vision_shapes(tiny, processor):
    inputs = lv.model_inputs(tiny, sample_path("cohete.jpg"), processor=processor)
    output, table = lv.stage_shapes(tiny, inputs)
    shapes = lv.vision_shapes(tiny.config.vision_config, tiny.config.text_config.hidden_size)
    seen = [row["forma"] for row in table]
    assert seen[0] == (1, 1, 4, 3, 560, 560)
    assert seen[1] == (4, 32, 40, 40)  # every tile slot through the patch convolution: 40×40 = 1600 patches
    assert seen[2] == shapes["vision_output_shape"] == tuple(output.image_outputs.last_hidden_state.shape)
    assert seen[3] == shapes["projected_shape"]
    tokens = len(lv.PROMPT_TOKENS)
    assert seen[4] == (1, tokens, 32) and seen[5] == tuple(output.logits.shape) == (1, tokens, 128)


def test_the_vision_output_keeps_the_encoders_padding_out(tiny, processor):
    # Inside, every tile is padded to a multiple of 8 tokens; the output has 1601 per tile again.
    inputs = lv.model_inputs(tiny, sample_path("gato.jpg"), processor=processor)
    with torch.no_grad():
        out = tiny.model.vision_model(
            pixel_values=inputs["pixel_values"],
            aspect_ratio_ids=inputs["aspect_ratio_ids"],
            aspect_ratio_mask=inputs["aspect_ratio_mask"],
        )
    assert (
        out.last_hidden_state.shape[-2] == 1601
        and lv.vision_shapes(tiny.config.vision_config, 32)["padded_tokens_per_tile"] == 1608
    )


def test_cross_attention_mask_follows_the_image_token(tiny):
    ids = lv.toy_token_ids(lv.PROMPT_TOKENS, tiny.config)
    image_at = lv.PROMPT_TOKENS.index("<|image|>")
    assert ids[image_at] == tiny.config.image_token_index == 128
    assert len(set(ids) - {128}) == len(set(lv.PROMPT_TOKENS)) - 1 and max(ids) <= 128
    mask = lv.cross_attention_mask(ids, 128, num_tiles=2)
    assert mask.shape == (1, len(ids), 1, 4)
    assert mask[0, :image_at].sum() == 0  # nothing before <|image|> looks at the image
    assert torch.all(mask[0, image_at:, 0, :2] == 1) and mask[0, :, 0, 2:].sum() == 0  # only the 2 real tiles
    with pytest.raises(CourseError, match="una imagen por mensaje"):
        lv.cross_attention_mask(ids + [128, 5], 128, num_tiles=1)
    with pytest.raises(CourseError):
        lv.cross_attention_mask([1, 5, 6], 128, num_tiles=1)


def test_the_image_reaches_the_text_only_through_the_gated_cross_attention(tiny, processor):
    rocket = lv.model_inputs(tiny, sample_path("cohete.jpg"), processor=processor)
    cat = lv.model_inputs(tiny, sample_path("gato.jpg"), processor=processor)
    changed = lv.image_effect(tiny, rocket, cat)
    image_at = lv.PROMPT_TOKENS.index("<|image|>")
    assert changed.shape == (len(lv.PROMPT_TOKENS),) and torch.all(changed[image_at:] > 1e-4)
    with lv.cross_attention_gates(tiny, 0.0):  # as when training starts: the text model as it was
        assert torch.equal(lv.image_effect(tiny, rocket, cat), torch.zeros_like(changed))
    assert torch.allclose(lv.image_effect(tiny, rocket, cat), changed)  # the gates are back


def test_plots_return_figures(tiny):
    import matplotlib.figure

    ids = lv.toy_token_ids(lv.PROMPT_TOKENS, tiny.config)
    for figure in (
        lv.plot_tiles(sample_path("cafe.jpg")),
        lv.plot_tiles(np.zeros((1000, 300, 3), dtype=np.uint8)),
        lv.plot_layouts(chosen=(1, 2)),
        lv.plot_layer_stacks({"11B": lv.published_config(), "diminuto": tiny}),
        lv.plot_cross_attention_mask(lv.PROMPT_TOKENS, lv.cross_attention_mask(ids, 128, num_tiles=2)),
    ):
        assert isinstance(figure, matplotlib.figure.Figure)
