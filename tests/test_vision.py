"""top_k is the model's softmax top-k (checked by hand and against transformers' pipeline), batches agree with
one-by-one, the CLI prints the old script's table, and bad images give Spanish errors."""

import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from course_utils import config, hf_hub, vision
from course_utils.errors import CourseError, ImageError, ModelLoadError, OptionError
from course_utils.vision_widget import ClassifierDemo

PHOTOS = ["astronauta.jpg", "cafe.jpg", "cohete.jpg", "gato.jpg"]


@pytest.fixture(scope="module")
def clf():
    return vision.load_classifier()


@pytest.fixture(scope="module")
def cpu_clf(standins):
    """The stand-in on the CPU in float32, whatever COURSE_DEVICE says (the CPU paths' own tests)."""
    return vision._load(str(standins["vit"]), "cpu")


def half_precision() -> bool:
    """COURSE_TEST_DEVICE=cuda (scripts/test_gpu.sh): the classifier runs in bf16/fp16 on the GPU."""
    return config.device().startswith("cuda")


def assert_same_ranking(got, expected, *, other_path: bool = False):
    """The same top-k. `other_path`: `got` came another way (the GPU path, or another device), so in half
    precision each probability may move by vision.HALF_PRECISION_ATOL, and labels are compared only
    where the expected neighbours are further apart than that (closer ones may swap places)."""
    got_p, expected_p = [p for _, p in got], [p for _, p in expected]
    if not (other_path and half_precision()):
        assert [label for label, _ in got] == [label for label, _ in expected]
        np.testing.assert_allclose(got_p, expected_p, rtol=1e-4, atol=1e-7)
        return
    tol = vision.HALF_PRECISION_ATOL
    np.testing.assert_allclose(got_p, expected_p, rtol=0, atol=tol)  # the k-th largest moves at most that
    gaps = -np.diff(expected_p)
    for i, (label, _) in enumerate(expected[:-1]):
        if gaps[i] > 2 * tol and (i == 0 or gaps[i - 1] > 2 * tol):
            assert got[i][0] == label


def test_loader_is_cached_quiet_and_in_eval_mode(standins, capfd):
    vision._load.cache_clear()
    clf = vision.load_classifier()
    out, err = capfd.readouterr()
    assert clf is vision.load_classifier() and clf.name == str(standins["vit"])
    assert not clf.model.training and clf.device == config.device()
    assert clf.standin and "Aviso: Modelo de prueba" in out
    assert "Loading weights" not in err


@pytest.mark.parametrize("photo", ["gato.jpg", "cohete.jpg"])
def test_top_k_is_softmax_then_argsort_of_the_logits(clf, samples, photo):
    pixels = clf.processor(images=Image.open(samples / photo).convert("RGB"), return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        logits = clf.model(pixel_values=pixels.to(clf.device, clf.model.dtype)).logits[0]
        probs = torch.softmax(logits.float(), dim=-1).cpu().numpy()
    order = np.argsort(-probs)[:7]
    expected = [(clf.labels[int(i)], float(probs[i])) for i in order]

    got = vision.top_k(samples / photo)
    assert len(got) == 7 and all(isinstance(p, float) for _, p in got)
    assert_same_ranking(got, expected)
    assert got.standin == clf.standin


def test_top_k_equals_the_transformers_pipeline(standins, samples):
    from transformers import pipeline

    pipe = pipeline("image-classification", model=str(standins["vit"]), device="cpu")
    for photo in ("gato.jpg", "cafe.jpg"):
        expected = [(d["label"], d["score"]) for d in pipe(str(samples / photo), top_k=7)]
        assert_same_ranking(vision.top_k(samples / photo, k=7), expected, other_path=True)  # CPU pipeline


def test_every_input_kind_gives_the_same_ranking(clf, samples):
    path = samples / "cafe.jpg"
    reference = vision.top_k(path)
    for source in (str(path), path.read_bytes(), Image.open(path), np.asarray(Image.open(path))):
        assert_same_ranking(vision.top_k(source), reference)
    assert len(vision.top_k(path, k=3)) == 3 and vision.top_k(path, k=3) == reference[:3]


@pytest.mark.parametrize("source", [b"no soy una imagen", b"", np.zeros((3, 3, 2)), 42])
def test_bad_images_raise_image_error(clf, source):
    with pytest.raises(ImageError):
        vision.top_k(source)


@pytest.mark.parametrize("k", [0, 1001])
def test_impossible_k_is_refused(clf, samples, k):
    with pytest.raises(OptionError, match="entre 1 y 1000"):
        vision.top_k(samples / "gato.jpg", k=k)


def test_impossible_batch_size_is_an_option_error(clf, samples):
    with pytest.raises(OptionError, match="batch_size=0 no vale"):
        vision.classify_files([samples / "gato.jpg"], batch_size=0, classifier=clf)


@pytest.fixture
def folder(tmp_path, samples):
    """The four sample photos plus a rotated PNG copy and a broken "image", in a folder."""
    for photo in PHOTOS:
        (tmp_path / photo).write_bytes((samples / photo).read_bytes())
    Image.open(samples / "gato.jpg").rotate(90, expand=True).save(tmp_path / "gato_girado.png")
    (tmp_path / "roto.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "notas.txt").write_text("ignored", encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize("batch_size", [1, 2, 8])
def test_batches_give_the_same_results_as_one_by_one(clf, folder, batch_size):
    rows = vision.classify_folder(folder, batch_size=batch_size, progress=False)
    names = ["astronauta.jpg", "cafe.jpg", "cohete.jpg", "gato.jpg", "gato_girado.png", "roto.jpg"]
    assert [r.file.split("/")[-1] for r in rows] == names
    for row in rows:
        if row.file.endswith("roto.jpg"):
            assert row.label is None and "no es una imagen" in row.error
            continue
        single = vision.top_k(row.file)
        assert_same_ranking(row.top, single, other_path=True)  # on CUDA: GPU decoding against PIL's
        assert row.error is None and (row.label, row.probability) == row.top[0]
    assert "Error:" in str(rows) and "Aviso:" in str(rows) and "<table>" in rows._repr_html_()


def test_folder_errors(tmp_path):
    with pytest.raises(ImageError, match="no tiene imágenes"):
        vision.classify_folder(tmp_path)
    with pytest.raises(ImageError, match="No encuentro la carpeta"):
        vision.classify_folder(tmp_path / "falta")


TABLE_LINE = re.compile(r"^  +(\d+)  (.+?) +(\d\.\d{3})$")


def test_cli_prints_the_top_table_with_three_decimals(clf, samples, capsys):
    assert vision.main([str(samples / "gato.jpg"), "--top", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    start = lines.index(str(samples / "gato.jpg"))
    assert lines[start + 1].split() == ["#", "clase", "probabilidad"]
    rows = [TABLE_LINE.match(line) for line in lines[start + 2 : start + 5]]
    expected = vision.classify_files([samples / "gato.jpg"], k=3, progress=False)[0].top  # the CLI's own path
    assert [(int(m[1]), m[2], m[3]) for m in rows] == [
        (i, label, f"{p:.3f}") for i, (label, p) in enumerate(expected, 1)
    ]
    assert len(lines) == start + 5


def test_cli_takes_folders_and_files_and_reports_bad_ones(folder, samples):
    result = subprocess.run(
        [sys.executable, "-m", "course_utils.vision", str(folder), str(samples / "gato.jpg")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1  # one file was not an image
    out = result.stdout
    assert out.startswith("Aviso: Modelo de prueba")
    assert out.count("#  clase") == 6 and len(re.findall(r"^  +7  .+ \d\.\d{3}$", out, re.MULTILINE)) == 6
    assert re.search(r"roto\.jpg\n  Error: «roto\.jpg» no es una imagen", out)
    assert "Traceback" not in result.stderr


def test_cli_bad_arguments_are_spanish_errors(tmp_path, capsys):
    assert vision.main([str(tmp_path)]) == 2
    assert "no tiene imágenes" in capsys.readouterr().err


def test_show_prediction_draws_image_and_bars(clf, samples):
    preds = vision.top_k(samples / "cohete.jpg")
    fig = vision.show_prediction(samples / "cohete.jpg", preds)
    ax_img, ax_bar = fig.axes
    label, p = preds[0]
    assert ax_img.get_title() == f"Predicción: {vision._short(label)} ({p:.3f})"
    assert ax_img.images[0].get_array().shape[:2] == Image.open(samples / "cohete.jpg").size[::-1]
    widths = [bar.get_width() for bar in ax_bar.patches]
    np.testing.assert_allclose(widths, [q for _, q in preds])
    assert ax_bar.get_xlabel() == "Probabilidad" and "7 clases" in ax_bar.get_title()
    assert "modelo de prueba" in fig._suptitle.get_text()
    with pytest.raises(CourseError):
        vision.show_prediction(samples / "cohete.jpg", [])


def test_widget_sample_upload_error_and_reset(clf, samples):
    demo = ClassifierDemo(samples)
    assert [name for name, _ in demo.sample.options][1:] == PHOTOS
    assert_same_ranking(demo.choose("gato.jpg"), vision.top_k(samples / "gato.jpg"))
    assert not demo.again.disabled

    assert demo.upload_file(samples / "transcripciones.json") is None
    assert "«transcripciones.json» no es una imagen" in demo.error.message

    assert_same_ranking(demo.upload_file(samples / "cafe.jpg"), vision.top_k(samples / "cafe.jpg"))
    demo.again.click()
    assert (
        demo.last is None
        and demo.sample.value == ""
        and demo.sample.index == 0
        and demo.upload.value == ()
        and demo.again.disabled
    )


def test_missing_hub_model_offline_fails_fast_in_spanish(monkeypatch):
    monkeypatch.setattr(hf_hub, "reachable", lambda url, timeout=3.0: False)
    with pytest.raises(CourseError, match="no está descargado y no hay conexión") as err:
        vision.load_classifier("google/vit-que-no-existe")
    assert "COURSE_VIT_MODEL" in err.value.hint


def test_cached_hub_model_loads_without_network(monkeypatch, standins):
    monkeypatch.setattr("huggingface_hub.try_to_load_from_cache", lambda repo, name: str(standins["vit"] / name))
    assert hf_hub.pretrained_source("google/vit-base-patch16-224") == {"local_files_only": True}
    assert hf_hub.pretrained_source(str(standins["vit"])) == {}


def _broken_models(root, vit):
    """Folders that COURSE_VIT_MODEL might wrongly point at, built from the stand-in."""
    (root / "vacia").mkdir()
    (root / "otra_cosa").mkdir()
    (root / "otra_cosa" / "notas.txt").write_text("hola", encoding="utf-8")
    for name, cut in (("cabecera_cortada", lambda data: data[:1000]), ("pesos_cortados", lambda data: data[:-1000])):
        shutil.copytree(vit, root / name)
        weights = root / name / "model.safetensors"
        weights.write_bytes(cut(weights.read_bytes()))
    shutil.copytree(vit, root / "sin_pesos")
    (root / "sin_pesos" / "model.safetensors").unlink()
    for name, text in (
        ("config_roto", "{esto no es json"),
        ("config_lista", "[1, 2]"),
        ("config_nulo", "null"),
        ("config_binario", "\udcff"),
    ):
        shutil.copytree(vit, root / name)
        (root / name / "config.json").write_bytes(text.encode("utf-8", "surrogateescape"))
    shutil.copytree(vit, root / "sin_preprocesador")
    (root / "sin_preprocesador" / "preprocessor_config.json").unlink()
    shutil.copytree(vit, root / "preprocesador_roto")
    (root / "preprocesador_roto" / "preprocessor_config.json").write_text("{", encoding="utf-8")
    shutil.copytree(vit, root / "otro_modelo")
    (root / "otro_modelo" / "config.json").write_text('{"model_type": "bert"}', encoding="utf-8")
    return root


@pytest.mark.parametrize(
    "folder, words",
    [
        ("vacia", "no contiene un modelo: le falta config.json"),
        ("otra_cosa", "no contiene un modelo: le falta config.json"),
        ("cabecera_cortada", "(.safetensors) están dañados o incompletos"),
        ("pesos_cortados", "(.safetensors) están dañados o incompletos"),
        ("sin_pesos", "no tiene los pesos del modelo (model.safetensors o pytorch_model.bin)"),
        ("config_roto", "El config.json de la carpeta «{}» está dañado: no es un JSON válido"),
        ("config_lista", "El config.json de la carpeta «{}» está dañado: no es un JSON válido"),
        ("config_nulo", "El config.json de la carpeta «{}» está dañado: no es un JSON válido"),
        ("config_binario", "El config.json de la carpeta «{}» está dañado: no es un JSON válido"),
        ("sin_preprocesador", "le falta preprocessor_config.json"),
        ("preprocesador_roto", "El preprocessor_config.json de la carpeta «{}» está dañado"),
        ("otro_modelo", "no es un clasificador de imágenes"),
        ("falta/vit", "No encuentro la carpeta"),
    ],
)
def test_a_folder_that_is_not_a_good_model_is_a_model_load_error(tmp_path, standins, folder, words):
    _broken_models(tmp_path, standins["vit"])
    with pytest.raises(ModelLoadError) as err:
        vision.load_classifier(tmp_path / folder)
    assert words.format(tmp_path / folder) in err.value.message and str(tmp_path / folder) in err.value.message
    assert "COURSE_VIT_MODEL" in err.value.hint
    assert "internet" not in str(err.value)  # a local folder downloads nothing


def test_cli_says_in_spanish_when_the_configured_model_is_broken(tmp_path, standins, samples, monkeypatch, capsys):
    _broken_models(tmp_path, standins["vit"])
    monkeypatch.setenv("COURSE_VIT_MODEL", str(tmp_path / "cabecera_cortada"))
    assert vision.main([str(samples / "gato.jpg")]) == 2
    assert "están dañados o incompletos" in capsys.readouterr().err
    monkeypatch.setenv("COURSE_VIT_MODEL", str(standins["vit"]))
    monkeypatch.setenv("COURSE_DEVICE", "tpu")
    assert vision.main([str(samples / "gato.jpg")]) == 2
    assert "COURSE_DEVICE=tpu no es válido" in capsys.readouterr().err


def test_cli_does_not_need_a_valid_ollama_host(clf, samples):
    env = {**os.environ, "OLLAMA_HOST": "localhost:114340"}
    run = subprocess.run(
        [sys.executable, "-m", "course_utils.vision", str(samples / "gato.jpg")],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert run.returncode == 0 and "Traceback" not in run.stderr
    assert len(re.findall(r"^  +7  .+ \d\.\d{3}$", run.stdout, re.MULTILINE)) == 1


@pytest.mark.parametrize("name", ["no válido!!", "org/-modelo"])
def test_a_malformed_model_name_is_said_plainly(name):
    with pytest.raises(ModelLoadError) as err:
        vision.load_classifier(name)
    assert f"«{name}» no es una carpeta ni un identificador de Hugging Face válido" in err.value.message
    assert "COURSE_VIT_MODEL" in err.value.hint


# --- The fast paths: attention on demand, and the GPU path's pieces that run on the CPU too --------------
# (tests/test_vision_gpu.py runs the GPU path itself, on a machine with CUDA.)


def test_sdpa_by_default_and_eager_only_for_the_call_that_asks_for_attention(cpu_clf):
    model = cpu_clf.model
    assert model.config._attn_implementation == "sdpa"
    pixels = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        fast = model(pixel_values=pixels)
        slow = model(pixel_values=pixels, output_attentions=True)
        assert model.config._attn_implementation == "sdpa"
        body = vision_body_attentions(model, pixels)
    assert fast.attentions is None and len(slow.attentions) == model.config.num_hidden_layers
    assert slow.attentions[0].shape == (2, model.config.num_attention_heads, 197, 197)
    torch.testing.assert_close(slow.logits, fast.logits, rtol=1e-5, atol=1e-5)  # the same function
    torch.testing.assert_close(body[0], slow.attentions[0])
    with pytest.raises(RuntimeError), torch.no_grad():  # a failed call leaves the fast attention too
        model(pixel_values=torch.randn(1, 3, 7, 7), output_attentions=True)
    assert model.config._attn_implementation == "sdpa"


def vision_body_attentions(model, pixels):
    assert model.config._attn_implementation == "sdpa"
    return model.vit(pixel_values=pixels, output_attentions=True).attentions


def test_cpu_keeps_float32_and_batches_of_eight(cpu_clf):
    assert cpu_clf.model.dtype == torch.float32 and vision.model_dtype("cpu") == torch.float32
    assert vision.auto_batch_size(cpu_clf) == vision.CPU_BATCH == 8


def test_gpu_plan_reads_the_processor_and_refuses_what_it_cannot_copy(cpu_clf):
    plan = vision.gpu_plan(cpu_clf.processor)
    assert plan == vision.Plan(224, 224, "bilinear", 1 / 255, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    from transformers import ViTImageProcessor

    for change in ({"do_center_crop": True}, {"resample": 1}, {"size": {"shortest_edge": 224}}):
        processor = ViTImageProcessor(size={"height": 224, "width": 224})
        for name, value in change.items():
            setattr(processor, name, value)
        assert vision.gpu_plan(processor) is None, change


@pytest.mark.parametrize("photo", PHOTOS)
def test_resize_normalize_is_the_processor_within_one_pixel_level(cpu_clf, samples, photo):
    """The GPU path's resize and normalisation, run here on the CPU from PIL's decoded pixels: PIL rounds
    in fixed point, torch in floats, so a pixel may differ by one level of 255, never more."""
    image = vision.open_image(samples / photo)
    reference = vision.processor_pixels([image], cpu_clf)
    plan = vision.gpu_plan(cpu_clf.processor)
    got = vision.resize_normalize([vision._chw(image)], plan, "cpu", torch.float32)
    levels = (got - reference).abs() * 0.5 * 255  # std 0.5: one level is 1/255/0.5
    assert got.shape == reference.shape == (1, 3, 224, 224)
    assert levels.max() <= 1 + 1e-3 and levels.mean() < 0.25


def _jpeg(image, **save):
    import io

    buffer = io.BytesIO()
    image.save(buffer, "JPEG", **save)
    return buffer.getvalue()


def test_jpeg_header_sends_only_plain_jpegs_to_the_gpu(samples):
    photo = Image.open(samples / "gato.jpg")
    assert vision.jpeg_header((samples / "gato.jpg").read_bytes()) == (300, 451, 1)
    assert vision.jpeg_header(_jpeg(photo, progressive=True)) == (300, 451, 1)
    assert vision.jpeg_header(_jpeg(photo.convert("L"))) == (300, 451, 1)
    data = _jpeg(photo)
    assert vision.jpeg_header(data[:-5000]) is None  # truncated: PIL calls it damaged, so PIL decides
    assert vision.jpeg_header(data + b"\0" * 10) == (300, 451, 1)  # zero padding after the end is harmless
    assert vision.jpeg_header(_jpeg(photo.convert("CMYK"))) is None
    assert vision.jpeg_header(b"\x89PNG\r\n\x1a\n" + data) is None
    assert vision.jpeg_header(b"not a jpeg") is None


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_turns_the_pixels_as_pil_does(tmp_path, orientation):
    rng = np.random.default_rng(orientation)
    # Blocks of 8×8 flat colour survive JPEG well enough; the comparison is between identical decodes anyway.
    pixels = np.kron(rng.integers(0, 256, (6, 10, 3), dtype=np.uint8), np.ones((8, 8, 1), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}.jpg"
    path.write_bytes(_jpeg(Image.fromarray(pixels), exif=exif))
    height, width, found = vision.jpeg_header(path.read_bytes())
    assert (height, width, found) == (48, 80, orientation)
    stored = vision._chw(Image.open(path).convert("RGB"))  # decoded as stored, not turned
    upright = vision._chw(vision.open_image(path))  # what PIL's exif_transpose gives
    assert torch.equal(vision.orient(stored, found), upright)


def test_the_pil_path_is_the_fallback_without_cuda_or_torchvision(cpu_clf):
    loader = vision.batch_loader(cpu_clf)
    assert not isinstance(loader, vision.GpuJpegLoader)  # the CPU: PIL path, whatever torchvision does


def test_patches_gets_attention_weights_from_any_sdpa_vit(standins):
    """patches.model_attentions on a ViT loaded straight from transformers (SDPA, no hooks yet)."""
    from transformers import ViTForImageClassification

    from course_utils import patches

    model = ViTForImageClassification.from_pretrained(standins["vit"]).eval()
    assert model.config._attn_implementation == "sdpa"
    layers = patches.model_attentions(model, torch.randn(2, 3, 224, 224), index=1)
    assert len(layers) == 2 and layers[0].shape == (3, 197, 197)
    torch.testing.assert_close(layers[0].sum(-1), torch.ones(3, 197))  # rows of a softmax
    assert model.config._attn_implementation == "sdpa"
