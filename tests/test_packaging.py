"""The conda environment, the package and the README stay in step."""

import re
import tomllib
from pathlib import Path

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
