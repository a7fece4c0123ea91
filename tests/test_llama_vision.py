"""course_utils.llama_vision: tile layouts against transformers' own Mllama processor; the tiny model's shapes."""

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import MllamaImageProcessorPil
from transformers.models.mllama import modeling_mllama

from course_utils import llama_vision as lv
from course_utils import qwen_vision as qv
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


def test_the_gates_of_the_tile_and_position_embeddings_as_in_transformers(tiny):
    # The lesson says: the tile tables are multiplied by tanh(g) (off at g = 0); the gated positional embedding
    # adds (1 − tanh(g)) · position + tanh(g) · position per layout (the position is on at g = 0).
    vision = tiny.model.vision_model
    ids = torch.tensor([[2]])
    hidden = torch.randn(1, 4, 1601, vision.hidden_size)
    fresh = type(vision.gated_positional_embedding)(tiny.config.vision_config)  # g = 0, as when training starts
    with torch.no_grad():
        assert torch.allclose(fresh(hidden, ids), hidden + fresh.embedding, atol=1e-6)
        layer = vision.gated_positional_embedding
        g = torch.tanh(layer.gate)
        per_layout = layer.tile_embedding.weight[2].reshape(4, 1601, -1)
        assert torch.allclose(layer(hidden, ids), hidden + (1 - g) * layer.embedding + g * per_layout, atol=1e-6)
        tile_table = type(vision.pre_tile_positional_embedding)(tiny.config.vision_config, is_gated=True)
        assert torch.equal(tile_table(hidden[:, :, :1600], ids), hidden[:, :, :1600])  # g = 0: nothing added


# --- Qwen2.5-VL next to Mllama (course_utils.qwen_vision) -------------------------------------------------------

# (width, height): the course's photos, sizes on both clamps, rounding ties (1,5 and 2,5 squares of 28 px), exactly
# max_pixels and one square more, long and thin ones, and odd sizes.
QWEN_SIZES = SIZES + [
    (10, 10),
    (56, 56),
    (70, 42),
    (98, 70),
    (1120, 896),
    (1120, 924),
    (150, 1),
    (29, 27),
    (1920, 1080),
    (600, 2400),
    (8000, 8000),
    (40, 5000),
    (333, 777),
    (1001, 13),
]
OTHER_RULES = [
    ({"patch_size": 16, "merge_size": 2, "min_pixels": 32 * 32 * 4, "max_pixels": 32 * 32 * 1024}, 448, 6),
    ({"patch_size": 14, "merge_size": 1, "min_pixels": 14 * 14 * 16, "max_pixels": 14 * 14 * 256}, 336, 9),
    ({"patch_size": 14, "merge_size": 2, "min_pixels": 28 * 28 * 256, "max_pixels": 28 * 28 * 1280}, 560, 4),
    ({"patch_size": 10, "merge_size": 3, "min_pixels": 30 * 30 * 9, "max_pixels": 30 * 30 * 200}, 224, 2),
]
SOURCE_06 = (
    Path(__file__).resolve().parent.parent
    / "instructor"
    / "source"
    / "06_llama_vision_por_dentro"
    / "06_llama_vision_por_dentro.ipynb"
)


@pytest.fixture(scope="module")
def qwen_processor():
    return qv.image_processor()


def test_the_qwen_rule_is_transformers_default_and_qwen25_vl_uses_that_processor():
    from transformers import Qwen2VLImageProcessorPil
    from transformers.models.auto.image_processing_auto import IMAGE_PROCESSOR_MAPPING_NAMES

    default = Qwen2VLImageProcessorPil()
    assert (default.patch_size, default.merge_size, default.temporal_patch_size) == (14, 2, qv.TEMPORAL_PATCH)
    assert default.size["shortest_edge"] == qv.QWEN_RULE["min_pixels"] == 56 * 56
    assert default.size["longest_edge"] == qv.QWEN_RULE["max_pixels"] == 28 * 28 * 1280
    assert (qv.QWEN_RULE["patch_size"], qv.QWEN_RULE["merge_size"]) == (default.patch_size, default.merge_size)
    assert IMAGE_PROCESSOR_MAPPING_NAMES["qwen2_5_vl"]["pil"] == "Qwen2VLImageProcessorPil"
    vision = lv.PUBLISHED_CONFIG["vision_config"]
    assert qv.MLLAMA_RULE == {
        "tile": vision["image_size"],
        "patch_size": vision["patch_size"],
        "max_tiles": lv.PUBLISHED_PREPROCESSOR["max_image_tiles"],
    }


@pytest.mark.parametrize(("width", "height"), QWEN_SIZES)
def test_token_counts_match_both_processors(qwen_processor, processor, width, height):
    from PIL import Image

    image = Image.fromarray(np.zeros((height, width, 3), dtype=np.uint8))  # PIL: no doubt about the channels
    out = qwen_processor(image, return_tensors="pt")
    counts = qv.token_counts(height, width)
    assert qv.processor_counts(image, qwen_processor, processor) == counts
    t, grid_h, grid_w = out["image_grid_thw"][0].tolist()
    assert counts["qwen_size"] == (grid_h * 14, grid_w * 14) and t == 1
    assert counts["qwen_tokens"] * 4 == grid_h * grid_w == out["pixel_values"].shape[0]
    mllama = processor(image, return_tensors="pt")
    assert counts["mllama_tiles"] == mllama["num_tiles"][0][0]
    layout = lv.tile_layout(height, width)
    assert layout[0] * layout[1] == counts["mllama_tiles"]
    assert lv.aspect_ratio_id(layout) == mllama["aspect_ratio_ids"].item()
    assert counts["mllama_tokens"] == counts["mllama_tiles"] * 1601
    assert qv.QWEN_RULE["min_pixels"] <= grid_h * grid_w * 14 * 14 <= qv.QWEN_RULE["max_pixels"]


@pytest.mark.parametrize(("rule", "tile", "max_tiles"), OTHER_RULES)
def test_token_counts_with_other_constants_match_the_processors(rule, tile, max_tiles):
    qwen_processor = qv.image_processor(**rule)
    mllama_processor = lv.image_processor(size={"height": tile, "width": tile}, max_image_tiles=max_tiles)
    for width, height in [(600, 400), (10, 10), (4000, 3000), (70, 42), (2240, 560), (1, 150)]:
        image = np.zeros((height, width, 3), dtype=np.uint8)
        counts = qv.token_counts(height, width, rule, {"tile": tile, "patch_size": 14, "max_tiles": max_tiles})
        assert qv.processor_counts(image, qwen_processor, mllama_processor) == counts, (rule, width, height)


def test_the_cafe_photo_and_the_comparison_table(qwen_processor):
    assert qv.token_counts(400, 600) == {
        "qwen_size": (392, 588),
        "qwen_tokens": 294,
        "mllama_tiles": 2,
        "mllama_tokens": 3202,
    }
    table = qv.comparison_table([(600, 400), (4000, 3000), (10, 10), (2240, 560)])
    assert [row["¿coincide con los procesadores?"] for row in table] == ["sí"] * 4
    assert [row["Qwen: tokens en el texto"] for row in table] == [294, 1230, 4, 1207]
    assert [row["Qwen: redimensionada a"] for row in table] == ["588×392", "1148×840", "56×56", "1988×476"]
    assert "<table>" in table._repr_html_()


def test_qwen_picture_is_the_resized_photo(qwen_processor):
    from PIL import Image

    out = qwen_processor(Image.open(sample_path("cafe.jpg")), return_tensors="pt")
    picture = qv.qwen_picture(out["pixel_values"], out["image_grid_thw"][0], qwen_processor)
    assert picture.shape == (392, 588, 3)
    with Image.open(sample_path("cafe.jpg")) as image:
        resized = np.asarray(image.convert("RGB").resize((588, 392), Image.BICUBIC), dtype=np.float64) / 255
    assert np.abs(picture - resized).max() < 1e-4  # the patches put back in place, normalization undone


def test_the_tiny_tower_merges_four_patches_into_one_token(qwen_processor, capsys):
    from PIL import Image

    tower = qv.build_tiny_tower()
    assert "Aviso:" in capsys.readouterr().out  # a stand-in says it is one
    out = qwen_processor(Image.open(sample_path("cafe.jpg")), return_tensors="pt")
    shapes = [row["forma"] for row in qv.tower_shapes(tower, out)]
    assert shapes == [(1176, 3 * 2 * 14 * 14), (1176, 32), (1176, 32), (294, 32)]


def test_qwen_bad_sizes_get_spanish_errors():
    for height, width in [(0, 10), (10, -1), (1.5, 10), (True, 10)]:
        with pytest.raises(CourseError, match="entero"):
            qv.token_counts(height, width)
    with pytest.raises(CourseError, match="alargada"):
        qv.token_counts(1, 201)


def test_plot_comparison_returns_a_figure():
    import matplotlib.figure

    for image in (sample_path("cafe.jpg"), np.zeros((1000, 300, 3), dtype=np.uint8)):
        assert isinstance(qv.plot_comparison(image), matplotlib.figure.Figure)


# --- exercise 4 of the lesson: its tests pass the solution and fail plausible wrong answers -----------------------


def _lesson_cells() -> dict:
    import nbformat

    nb = nbformat.read(SOURCE_06, as_version=4)
    by_id = {c.metadata.get("nbgrader", {}).get("grade_id"): c.source for c in nb.cells}
    return {
        "imports": nb.cells[2].source,
        "solution": by_id["06-ex4-visual-tokens"],
        "tests": by_id["06-ex4-visual-tokens-tests"],
    }


def _grade_exercise_4(solution: str) -> None:
    """Run the exercise's test cell (visible and hidden tests) on `solution`, as the autograder does."""
    cells = _lesson_cells()
    namespace: dict = {}
    exec(cells["imports"], namespace)
    exec(solution, namespace)
    exec(cells["tests"], namespace)


MUTANTS = {
    "forgets the merge": ('"qwen_tokens": patches // qwen["merge_size"] ** 2', '"qwen_tokens": patches'),
    "rounds to patches, not to tokens": (
        'factor = qwen["patch_size"] * qwen["merge_size"]',
        'factor = qwen["patch_size"]',
    ),
    "fixed 28 px": ('factor = qwen["patch_size"] * qwen["merge_size"]', "factor = 28"),
    "no max_pixels clamp": ('if new_height * new_width > qwen["max_pixels"]:', "if False:"),
    "no min_pixels clamp": ('elif new_height * new_width < qwen["min_pixels"]:', "elif False:"),
    "rounds halves up": (
        "round(height / factor) * factor, round(width / factor) * factor",
        "math.floor(height / factor + 0.5) * factor, math.floor(width / factor + 0.5) * factor",
    ),
    "floor when shrinking forgotten": (
        "math.floor(height / beta / factor) * factor",
        "round(height / beta / factor) * factor",
    ),
    "forgets the CLS": (
        '(mllama["tile"] // mllama["patch_size"]) ** 2 + 1',
        '(mllama["tile"] // mllama["patch_size"]) ** 2',
    ),
    "counts every tile slot": (
        '"mllama_tokens": rows * cols * per_tile',
        '"mllama_tokens": mllama["max_tiles"] * per_tile',
    ),
}


def test_exercise_4_passes_the_solution():
    _grade_exercise_4(_lesson_cells()["solution"])


@pytest.mark.parametrize("mutant", sorted(MUTANTS))
def test_exercise_4_fails_a_plausible_wrong_answer(mutant):
    old, new = MUTANTS[mutant]
    solution = _lesson_cells()["solution"]
    assert solution.count(old) == 1, mutant
    with pytest.raises(AssertionError):
        _grade_exercise_4(solution.replace(old, new))


@pytest.mark.parametrize(
    "body",
    [
        "return qwen_vision.token_counts(height, width, qwen, mllama)",
        "from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize as sr\n"
        "    f = qwen['patch_size'] * qwen['merge_size']\n"
        "    h, w = sr(height, width, f, qwen['min_pixels'], qwen['max_pixels'])\n"
        "    return {'qwen_size': (h, w), 'qwen_tokens': h * w // (qwen['patch_size'] * qwen['merge_size']) ** 2,\n"
        "            'mllama_tiles': 1, 'mllama_tokens': 1601}",
        "p = qwen_vision.image_processor(**qwen)\n"
        "    g = p(np.zeros((height, width, 3), dtype=np.uint8))['image_grid_thw'][0]\n"
        "    return {'qwen_size': (int(g[1]) * 14, int(g[2]) * 14), 'qwen_tokens': int(g.prod()) // 4,\n"
        "            'mllama_tiles': 1, 'mllama_tokens': 1601}",
    ],
    ids=["the reference", "transformers' smart_resize", "the processor"],
)
def test_exercise_4_refuses_the_library_doing_the_arithmetic(body):
    with pytest.raises(AssertionError, match="Haz las cuentas tú"):
        _grade_exercise_4(f"def visual_tokens_by_hand(height, width, qwen, mllama):\n    {body}\n")
