"""The conda environment, the package and the README stay in step."""

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_mirrors_pyproject_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    conda_packages = [d for d in env["dependencies"] if isinstance(d, str)]
    pip_reqs = [r for r in pip_section if not r.startswith("-")]
    assert sorted(pip_reqs) == sorted(project["dependencies"])
    assert "-e ." in pip_section
    assert any(p.startswith("python=3.1") for p in conda_packages) and "ffmpeg" in conda_packages


def test_test_path_pins_cpu_torch_and_readme_has_the_two_commands():
    makefile = (ROOT / "Makefile").read_text()
    assert "torch==2.13.0" in makefile
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    head = readme[:1500]
    assert "make lab" in head and "make test" in head
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_the_samples_have_one_source_at_the_top_level():
    """The design card's layout: data/samples/ with CREDITS.md; a checkout reads them there."""
    from course_utils.samples import sample_path

    assert (ROOT / "data" / "samples" / "CREDITS.md").is_file()
    assert not (ROOT / "course_utils" / "data").exists()
    assert sample_path() == ROOT / "data" / "samples"
    assert sample_path("gato.jpg") == ROOT / "data" / "samples" / "gato.jpg"


def test_every_subpackage_is_listed_for_the_wheel():
    """pyproject lists the packages by hand (course_utils.data maps to data/): a new subpackage joins the list."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(init.parent.relative_to(ROOT).parts) for init in (ROOT / "course_utils").rglob("__init__.py")}
    assert found <= listed, f"Faltan en pyproject.toml [tool.setuptools] packages: {sorted(found - listed)}"
    assert "course_utils.data" in listed


@pytest.mark.slow
def test_the_wheel_installs_and_runs_outside_the_source_tree(tmp_path, standins):
    """Not editable: built as a wheel, installed in a fresh virtualenv, run from an unrelated folder."""
    src = tmp_path / "src"
    for folder in ("course_utils", "data"):
        shutil.copytree(ROOT / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", str(src), "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist")],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = (tmp_path / "dist").glob("course_utils-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(
        subprocess.check_output(
            [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], text=True
        ).strip()
    )
    subprocess.run(
        [*pip, "install", "--no-deps", "--no-index", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    # The dependencies (torch, transformers…) come from the test environment, after the venv's own folder;
    # a .pth line adds the folder without running its .pth files, so the editable install stays out.
    (site / "test_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    work = tmp_path / "fuera"
    work.mkdir()
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "PYTHONPATH": ""}
    env.pop("COURSE_CACHE_DIR", None)

    def run(*args):
        return subprocess.run([python, *args], cwd=work, env=env, capture_output=True, text=True, timeout=300)

    listed = run("-c", WHEEL_SCRIPT)
    assert listed.returncode == 0, listed.stderr
    info = json.loads(listed.stdout.splitlines()[-1])
    assert Path(info["package"]).is_relative_to(site), info["package"]
    assert {"gato.jpg", "hola.wav", "CREDITS.md", "transcripciones.json"} <= set(info["samples"])
    assert info["image"] == [451, 300] and info["seconds"] > 1 and "CourseError" in info["missing"]
    assert info["labels"] == 1000  # the ViT stand-in's labels travel in the wheel

    doctor = run("-m", "course_utils.doctor")
    assert doctor.returncode == 0 and "Diagnóstico del entorno" in doctor.stdout, doctor.stderr
    assert "Traceback" not in doctor.stderr
    photo = site / "course_utils" / "data" / "samples" / "gato.jpg"
    vision = run("-m", "course_utils.vision", str(photo), "--top", "3")
    assert vision.returncode == 0, vision.stderr
    assert str(photo) in vision.stdout and len(re.findall(r"^ +\d  .+ \d\.\d{3}$", vision.stdout, re.M)) == 3
    # Nothing was written into the installed package (caches go to the user's cache folder).
    installed = {
        p.relative_to(site).as_posix()
        for p in (site / "course_utils").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert installed == {n for n in _wheel_files(wheel) if n.startswith("course_utils/")}


WHEEL_SCRIPT = """
import json
import course_utils
from course_utils import audio, images, standins
from course_utils.samples import sample_path
try:
    sample_path("perro.jpg")
    missing = "ninguno"
except course_utils.CourseError as exc:
    missing = type(exc).__name__
print(json.dumps({"package": course_utils.__file__, "samples": sorted(p.name for p in sample_path().iterdir()),
                  "image": list(images.open_image(sample_path("gato.jpg")).size),
                  "seconds": audio.duration(audio.load_audio(sample_path("hola.wav"))), "missing": missing,
                  "labels": len(standins.imagenet_labels())}))
"""


def _wheel_files(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())
