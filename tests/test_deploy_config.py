"""The lab server's configuration files as JupyterHub reads them (traitlets' own loader), and the files
install_hub.sh puts next to them: the limits, the GPU policy, the restart policy, the two environments.

What these settings do on a running server is proved elsewhere: tests/test_hub.py restarts a real hub
with a student's server running, and tests/test_lab_accounts.py shows the memory caps with separate Unix
accounts. SystemdSpawner itself (MemoryMax=, PrivateDevices=, the slice) needs systemd as PID 1 and is
not run by the tests (docs/laboratorio.md, «Límites»).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from traitlets.config.loader import PyFileConfigLoader

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"


def hub_config(monkeypatch, **env: str):
    for name in ("COURSE_HUB_DEVICE", "COURSE_HUB_USER_ENV", "COURSE_HUB_ACTIVE_SERVER_LIMIT", "COURSE_HUB_SLICE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return PyFileConfigLoader("jupyterhub_config.py", path=str(DEPLOY / "jupyterhub")).load_config()


def test_limits_and_restart_policy(monkeypatch):
    c = hub_config(monkeypatch)
    assert c.JupyterHub.cleanup_servers is False  # a restart of the hub leaves the servers running
    assert c.JupyterHub.active_server_limit == 70
    assert c.Spawner.mem_limit == "3G" and c.Spawner.cpu_limit == 2.0
    assert c.SystemdSpawner.slice == "curso-estudiantes.slice"
    assert c.SystemdSpawner.disable_user_sudo is True
    assert c.SystemdSpawner.unit_extra_properties.to_dict()["update"]["TasksMax"] == "512"


@pytest.mark.parametrize(("device", "hidden"), [("cpu", True), ("cuda", False)])
def test_the_spawner_decides_who_sees_the_gpu(monkeypatch, device, hidden):
    c = hub_config(monkeypatch, COURSE_HUB_DEVICE=device)
    assert c.SystemdSpawner.isolate_devices is hidden  # PrivateDevices=yes: no /dev/nvidia* at all
    environment = c.Spawner.environment.to_dict()["update"]
    assert ("CUDA_VISIBLE_DEVICES" in environment) is hidden


def test_the_students_environment_is_not_the_hubs(monkeypatch):
    c = hub_config(monkeypatch, COURSE_HUB_USER_ENV="/opt/curso-hub/user")
    assert c.Spawner.cmd == ["/opt/curso-hub/user/bin/python", "-m", "jupyterhub.singleuser"]
    assert c.Spawner.environment.to_dict()["update"]["PATH"].startswith("/opt/curso-hub/user/bin:")
    unit = (DEPLOY / "systemd" / "curso-hub.service").read_text()
    assert "ExecStart=@PREFIX@/hub/bin/python -m jupyterhub" in unit
    assert "Environment=COURSE_HUB_USER_ENV=@PREFIX@/user" in unit


def test_the_hub_environment_is_pinned_with_hashes():
    lock = (DEPLOY / "requirements-hub.lock").read_text()
    pins = re.findall(r"^([a-z0-9._-]+)==([^ ]+) \\$", lock, flags=re.MULTILINE)
    names = {name for name, _ in pins}
    assert {"jupyterhub", "jupyterhub-idle-culler", "jupyterhub-systemdspawner", "pamela"} <= names
    requirements = [line for line in lock.splitlines() if re.match(r"^[A-Za-z0-9]", line)]
    assert len(requirements) == len(pins), "cada paquete con su versión exacta"
    assert lock.count("--hash=sha256:") >= len(pins)
    wanted = [
        re.split(r"[<>=]", line)[0]
        for line in (DEPLOY / "requirements-hub.in").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert set(wanted) <= names


def test_the_installer_uses_the_lock_the_slice_and_the_permissions_script():
    script = (DEPLOY / "install_hub.sh").read_text()
    assert subprocess.run(["bash", "-n", str(DEPLOY / "install_hub.sh")]).returncode == 0
    assert subprocess.run(["bash", "-n", str(DEPLOY / "lab_permissions.sh")]).returncode == 0
    assert '--require-hashes -r "$REPO/deploy/requirements-hub.lock"' in script
    assert "pip install -q -e" not in script  # the course is copied: students never read the repository
    assert "ugo+rwx" not in script and 'bash "$REPO/deploy/lab_permissions.sh"' in script
    assert "curso-estudiantes.slice" in script
    assert "deploy/nftables/curso-ollama.nft" in script and "systemctl enable curso-ollama-firewall" in script
    slice_unit = (DEPLOY / "systemd" / "curso-estudiantes.slice").read_text()
    assert "MemoryMax=@MEMORY_MAX@" in slice_unit and "[Slice]" in slice_unit
