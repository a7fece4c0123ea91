"""The classifier's GPU path against its PIL path, on a machine with CUDA (scripts/test_gpu.sh runs them).

Skipped without CUDA (CI has no GPU), and the decoding tests also without torchvision: on such machines
the PIL path is the only one, and tests/test_vision.py covers it and the GPU path's pieces that run on
the CPU (header reading, EXIF orientation, resize and normalisation).

The reference is the PIL path in float32 on the CPU. The GPU path decodes with nvJPEG (chroma upsampling
and rounding may differ from libjpeg by a level or two), resizes in floats and runs the model in bf16
(fp16 on GPUs without bf16): each probability may differ by vision.HALF_PRECISION_ATOL, and the top-1
class must be the same wherever the reference's top two are further apart than twice that.
"""

import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from course_utils import vision

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="sin GPU CUDA: el camino de GPU del clasificador solo se prueba en una "
    "máquina con GPU (scripts/test_gpu.sh)",
)
needs_torchvision = pytest.mark.skipif(
    vision._torchvision_jpeg() is None, reason="torchvision no se importa aquí: solo existe el camino de PIL"
)
PHOTOS = ["astronauta.jpg", "cafe.jpg", "cohete.jpg", "gato.jpg"]


@pytest.fixture(scope="module")
def gpu(standins):
    return vision._load(str(standins["vit"]), "cuda")


@pytest.fixture(scope="module")
def cpu(standins):
    return vision._load(str(standins["vit"]), "cpu")


@pytest.fixture
def folder(tmp_path, samples):
    """The samples, a copy stored sideways with an EXIF orientation, a PNG, a CMYK JPEG and a broken file."""
    for photo in PHOTOS:
        shutil.copy(samples / photo, tmp_path / photo)
    sideways = Image.open(samples / "cafe.jpg").transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6  # "turn 90° clockwise to view": exif_transpose undoes the rotation above
    sideways.save(tmp_path / "cafe_exif.jpg", quality=95, exif=exif)
    Image.open(samples / "gato.jpg").save(tmp_path / "gato.png")
    Image.open(samples / "cohete.jpg").convert("CMYK").save(tmp_path / "cohete_cmyk.jpg")
    (tmp_path / "roto.jpg").write_bytes(b"\xff\xd8\xff no soy un jpeg")
    return tmp_path


# Relative error ‖logits_gpu − logits_pil‖ / ‖logits_pil‖ allowed between the two paths: bf16 operands
# alone give 1e-3 to 1e-2; the decoders' and resizes' pixel differences add to it.
LOGITS_RTOL = 0.05


def _logits(classifier, pixels):
    with torch.inference_mode():
        return classifier.model(pixel_values=pixels).logits.float().cpu()


def _full_probs(classifier, pixels):
    return _logits(classifier, pixels).softmax(-1)


def test_half_precision_sdpa_and_batch_fitted_to_memory(gpu):
    major, _ = torch.cuda.get_device_capability()
    assert gpu.model.dtype == (torch.bfloat16 if major >= 8 else torch.float16)
    assert gpu.model.config._attn_implementation == "sdpa"
    size = vision.auto_batch_size(gpu)
    assert 1 <= size <= vision.MAX_GPU_BATCH and size & (size - 1) == 0
    print(f"\nGPU {torch.cuda.get_device_name()}: {gpu.model.dtype}, lotes de {size}")


def test_attention_weights_on_the_gpu_then_back_to_sdpa(gpu, cpu, samples):
    image = vision.open_image(samples / "gato.jpg")
    with torch.no_grad():
        got = gpu.model(pixel_values=vision.processor_pixels([image], gpu), output_attentions=True).attentions
        ref = cpu.model(pixel_values=vision.processor_pixels([image], cpu), output_attentions=True).attentions
    assert gpu.model.config._attn_implementation == "sdpa"
    assert len(got) == len(ref) and got[0].dtype == gpu.model.dtype
    for a, b in zip(got, ref):
        np.testing.assert_allclose(a.float().cpu().numpy(), b.numpy(), atol=vision.HALF_PRECISION_ATOL)


@needs_torchvision
def test_gpu_decoding_and_resize_within_a_few_levels_of_pil(gpu, cpu, folder):
    """Model input from the GPU loader (computed in float32 here) against the processor's, from PIL."""
    rows = [vision.Row(str(p)) for p in sorted(folder.iterdir())]
    loader = vision.GpuJpegLoader(gpu, vision.gpu_plan(gpu.processor), dtype=torch.float32)
    ok, pixels, ready = loader(rows)
    ready.synchronize()
    assert [r.file for r in ok] == [r.file for r in rows if not r.file.endswith("roto.jpg")]
    assert [r.file for r in rows if r.error] == [str(folder / "roto.jpg")]
    reference = vision.processor_pixels([vision.open_image(r.file) for r in ok], cpu)
    levels = ((pixels.cpu() - reference).abs() * 0.5 * 255).flatten(1)  # std 0.5: one level is 1/255/0.5
    worst, mean = levels.max(1).values, levels.mean(1)
    for row, w, m in zip(ok, worst.tolist(), mean.tolist()):
        print(f"{row.file.split('/')[-1]}: diferencia máxima {w:.1f} niveles, media {m:.3f}")
    assert float(mean.max()) < 1.0 and float(worst.max()) <= 16


@needs_torchvision
def test_classify_folder_on_the_gpu_agrees_with_the_pil_path(gpu, cpu, folder):
    got = vision.classify_folder(folder, k=7, classifier=gpu, progress=False)
    ref = vision.classify_folder(folder, k=7, classifier=cpu, progress=False)
    assert [r.file for r in got] == [r.file for r in ref]
    assert [r.error for r in got] == [r.error for r in ref]
    tol = vision.HALF_PRECISION_ATOL
    worst = 0.0
    for g, r in zip(got, ref):
        if r.error:
            continue
        full = _full_probs(cpu, vision.processor_pixels([vision.open_image(r.file)], cpu))[0]
        worst = max(worst, max(abs(p - q) for (_, p), (_, q) in zip(g.top, r.top)))
        # the GPU's top-1 is, for the reference, as probable as its top-1 up to the tolerance
        assert float(full[gpu.model.config.label2id[g.label]]) >= r.probability - tol
        if r.top[0][1] - r.top[1][1] > 2 * tol:
            assert g.label == r.label
    assert worst <= tol
    print(f"\nmáxima diferencia de probabilidad entre caminos: {worst:.2e} (tolerancia {tol})")


@needs_torchvision
def test_the_gpu_path_computes_the_same_logits_as_the_pil_path(gpu, cpu, folder):
    rows = [vision.Row(str(p)) for p in sorted(folder.iterdir())]
    ok, pixels, ready = vision.GpuJpegLoader(gpu, vision.gpu_plan(gpu.processor))(rows)
    ready.synchronize()
    got = _logits(gpu, pixels)
    ref = _logits(cpu, vision.processor_pixels([vision.open_image(r.file) for r in ok], cpu))
    errors = ((got - ref).norm(dim=1) / ref.norm(dim=1)).tolist()
    print("\nerror relativo de los logits por imagen:", ", ".join(f"{e:.1e}" for e in errors))
    assert max(errors) <= LOGITS_RTOL
    assert torch.isfinite(got).all()


@needs_torchvision
def test_batch_sizes_and_one_by_one_agree_on_the_gpu(gpu, folder):
    one = vision.classify_folder(folder, batch_size=1, classifier=gpu, progress=False)
    many = vision.classify_folder(folder, classifier=gpu, progress=False)
    for a, b in zip(one, many):
        assert a.error == b.error
        if a.top:
            np.testing.assert_allclose([p for _, p in a.top], [p for _, p in b.top], atol=vision.HALF_PRECISION_ATOL)


def test_classify_folder_gives_the_batches_gpu_memory_back(gpu, samples, tmp_path):
    """On a shared lab GPU an idle kernel must not keep the batches' cache (docs/laboratorio.md): a batch
    of 256 images keeps hundreds of MiB in PyTorch's cache unless it is given back."""
    for i in range(256):
        shutil.copy(samples / "gato.jpg", tmp_path / f"gato_{i:03d}.jpg")
    # A first small run creates what stays by design (cuBLAS workspaces, the loaders' streams).
    vision.classify_files(sorted(tmp_path.iterdir())[:2], batch_size=2, classifier=gpu, progress=False)
    torch.cuda.synchronize()
    before = torch.cuda.memory_reserved()
    vision.classify_folder(tmp_path, batch_size=256, classifier=gpu, progress=False)
    torch.cuda.synchronize()
    assert torch.cuda.memory_reserved() <= before + 32 * 2**20
