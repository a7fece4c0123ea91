# JupyterHub for the course on one lab server, without The Littlest JupyterHub.
# Installed by deploy/install_hub.sh (as /opt/curso-hub/jupyterhub_config.py, next to curso.py);
# docs/laboratorio.md explains every choice. Settings come from the hub's environment (the systemd
# unit deploy/systemd/curso-hub.service), with the defaults below.
import os
import sys

c = get_config()  # noqa: F821 (JupyterHub provides it)


def _setting(name: str, default: str) -> str:
    return os.environ.get(name, "").strip() or default


# The course itself: models, Ollama, device, shared caches (the same file TLJH uses).
HERE = os.path.dirname(os.path.abspath(__file__))
if not os.path.isfile(os.path.join(HERE, "curso.py")):  # load_subconfig would skip it silently
    raise SystemExit(f"Falta {HERE}/curso.py, la configuración del curso.")
load_subconfig(os.path.join(HERE, "curso.py"))  # noqa: F821

# Where students come in. Behind nginx with HTTPS, or with a certificate here: the microphone
# needs a secure context (docs/laboratorio.md, section 1).
c.JupyterHub.bind_url = _setting("COURSE_HUB_BIND_URL", "http://127.0.0.1:8000")
if os.environ.get("COURSE_HUB_SSL_CERT"):
    c.JupyterHub.ssl_cert = os.environ["COURSE_HUB_SSL_CERT"]
    c.JupyterHub.ssl_key = os.environ["COURSE_HUB_SSL_KEY"]

# Students are the server's Unix accounts in one group; each server is a systemd unit of its own
# with the limits below (SystemdSpawner turns them into MemoryMax= and CPUQuota=).
c.JupyterHub.authenticator_class = "pam"
c.PAMAuthenticator.allowed_groups = {_setting("COURSE_HUB_GROUP", "curso")}
c.Authenticator.admin_users = {u for u in _setting("COURSE_HUB_ADMINS", "").split(",") if u}
c.JupyterHub.spawner_class = "systemd"
# The students' environment (the course, PyTorch, JupyterLab, nbgrader) is not the hub's: install_hub.sh
# makes /opt/curso-hub/hub (JupyterHub, pinned by deploy/requirements-hub.lock) and /opt/curso-hub/user.
USER_ENV = _setting("COURSE_HUB_USER_ENV", sys.prefix)
c.Spawner.cmd = [os.path.join(USER_ENV, "bin", "python"), "-m", "jupyterhub.singleuser"]
if USER_ENV != sys.prefix:
    c.Spawner.environment.update({"PATH": f"{USER_ENV}/bin:/usr/local/bin:/usr/bin:/bin"})
c.Spawner.mem_limit = _setting("COURSE_HUB_MEM_LIMIT", "3G")
c.Spawner.cpu_limit = float(_setting("COURSE_HUB_CPU_LIMIT", "2"))
c.SystemdSpawner.isolate_tmp = True
# A whole class logs in at once: let the servers start in parallel, and give a slow start time.
c.JupyterHub.concurrent_spawn_limit = int(_setting("COURSE_HUB_SPAWN_LIMIT", "40"))
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 90

# Servers with no activity are stopped (their memory comes back); the students' files stay.
CULL_TIMEOUT = _setting("COURSE_HUB_CULL_TIMEOUT", "3600")
c.JupyterHub.services.append(
    {
        "name": "idle-culler",
        "command": [
            sys.executable,
            "-m",
            "jupyterhub_idle_culler",
            f"--timeout={CULL_TIMEOUT}",
            "--cull-every=300",
            "--concurrency=5",
        ],
    }
)
c.JupyterHub.load_roles.append(
    {
        "name": "idle-culler",
        "description": "Para los servidores inactivos",
        "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
        "services": ["idle-culler"],
    }
)
