# The course on a JupyterHub: what every student kernel gets (models, Ollama, device, shared caches).
#
# Loaded in two ways:
#   - The Littlest JupyterHub: copied to /opt/tljh/config/jupyterhub_config.d/curso.py
#     (deploy/install_hub.sh --tljh). TLJH keeps its own authenticator, spawner, limits and idle culler
#     (tljh-config); this file only adds the course.
#   - Our own hub: deploy/jupyterhub/jupyterhub_config.py loads it and adds the rest.
#
# It runs inside the hub's Python (under TLJH, /opt/tljh/hub), which does not have the course
# packages: only the standard library here.
#
# Each setting can be changed without editing this file, through the hub's own environment
# (for example `systemctl edit jupyterhub` → Environment=COURSE_HUB_DEVICE=cuda).
import os
import pwd
import stat

c = get_config()  # noqa: F821 (JupyterHub provides it)


def _setting(name: str, default: str) -> str:
    return os.environ.get(name, "").strip() or default


# Where the teacher's pre-class command (python -m course_utils.prepare_class) fills the caches.
SHARED = _setting("COURSE_HUB_SHARED", "/srv/curso")
CACHE = os.path.join(SHARED, "cache")
# "cpu" (default) or "cuda". Why cpu: see docs/laboratorio.md, «Capacidad».
DEVICE = _setting("COURSE_HUB_DEVICE", "cpu")
# Threads for PyTorch in each kernel: the same number as the CPU limit per user.
THREADS = str(max(1, int(float(_setting("COURSE_HUB_CPU_LIMIT", "2")))))
# Idle kernels are shut down after this many seconds (the server stays; its memory comes back).
KERNEL_IDLE_TIMEOUT = _setting("COURSE_HUB_KERNEL_IDLE_TIMEOUT", "1800")

# The course's models and Ollama (course_utils.config reads these names).
WHISPER = _setting("COURSE_WHISPER_MODEL", "base")
# Official Whisper names are given as the checkpoint in the shared cache: Whisper's own cache
# (~/.cache/whisper, or $XDG_CACHE_HOME/whisper) is per user, and moving XDG_CACHE_HOME to a
# read-only folder would also move Matplotlib's and pip's caches there.
WHISPER_FILES = {"large": "large-v3.pt", "turbo": "large-v3-turbo.pt"}
if "/" not in WHISPER:
    WHISPER = os.path.join(CACHE, "whisper", WHISPER_FILES.get(WHISPER, WHISPER + ".pt"))

environment = {
    "COURSE_WHISPER_MODEL": WHISPER,
    "COURSE_VIT_MODEL": _setting("COURSE_VIT_MODEL", "google/vit-base-patch16-224"),
    "COURSE_LLM_MODEL": _setting("COURSE_LLM_MODEL", "llama3.2-vision"),
    # One Ollama, or the nginx in front of several (deploy/nginx/ollama.conf).
    "OLLAMA_HOST": _setting("OLLAMA_HOST", "http://127.0.0.1:11434"),
    "COURSE_DEVICE": DEVICE,
    # The shared, read-only model cache; kernels never download into it.
    "HF_HOME": os.path.join(CACHE, "huggingface"),
    # What the course builds (course_utils.config.cache_dir()): Whisper base for faster-whisper and its
    # openai-whisper checkpoint, built there by prepare_class, so kernels find them and write nothing.
    "COURSE_CACHE_DIR": CACHE,
    "HF_HUB_OFFLINE": "1",
    "OMP_NUM_THREADS": THREADS,
}
if DEVICE == "cpu":
    # Not even by mistake (`.to("cuda")`): every process that touches the GPU costs a CUDA context.
    environment["CUDA_VISIBLE_DEVICES"] = ""
c.Spawner.environment.update(environment)

c.Spawner.default_url = "/lab"
c.Spawner.args.extend(
    [
        f"--MappingKernelManager.cull_idle_timeout={KERNEL_IDLE_TIMEOUT}",
        "--MappingKernelManager.cull_interval=300",
        # Voilà's page template without Font Awesome from a public CDN (deploy/voila, installed by install_hub.sh)
        "--VoilaConfiguration.template=curso",
    ]
)
# With SystemdSpawner (TLJH, and our own hub) the cache is read-only for the students' processes,
# whatever its file permissions say. The "-" lets a server start if the folder does not exist yet.
c.SystemdSpawner.readonly_paths = ["-" + CACHE]

# --- Limits that hold (docs/laboratorio.md, «Límites»): enforced by systemd, not by the student's code.
# The GPU: with COURSE_DEVICE=cpu the servers get a /dev without the GPU's devices (PrivateDevices=yes),
# so emptying CUDA_VISIBLE_DEVICES is not the only thing between a student and the GPU: the device files
# are not there. With cuda the spawner shows them (the GPU is shared: section 4 of the guide).
c.SystemdSpawner.isolate_devices = DEVICE == "cpu"
# No sudo, setuid or new privileges inside a student's server (NoNewPrivileges=yes).
c.SystemdSpawner.disable_user_sudo = True
# Every student's server inside one slice whose MemoryMax= caps all of them together
# (deploy/systemd/curso-estudiantes.slice, installed by install_hub.sh): a class that runs out of memory
# kills a student's kernel, never Ollama, the hub or the system.
c.SystemdSpawner.slice = _setting("COURSE_HUB_SLICE", "curso-estudiantes.slice")
# A fork bomb stops at this many processes and threads per student (PyTorch uses a few dozen).
c.SystemdSpawner.unit_extra_properties.update({"TasksMax": _setting("COURSE_HUB_TASKS_MAX", "512")})
# At most this many servers at once; the next student gets «try again» (HTTP 429) instead of a server
# that would push the others out of memory.
c.JupyterHub.active_server_limit = int(_setting("COURSE_HUB_ACTIVE_SERVER_LIMIT", "70"))
# Restarting the hub (a second install_hub.sh, an upgrade) leaves the students' servers running: with
# SystemdSpawner each is a unit of its own, and the new hub finds them again. TLJH does the same.
c.JupyterHub.cleanup_servers = False


def private_home(spawner) -> None:
    """Before each server starts: the student's home, mode 700 (Debian's `useradd -m` leaves 0755, and
    the chat's autosaves, photos included, live there). TLJH does the same (`chmod o-rwx`) when it
    creates an account; deploy/lab_permissions.sh does it for the accounts that already exist."""
    for name in (spawner.user.name, "jupyter-" + spawner.user.name):  # our hub's accounts, TLJH's
        try:
            account = pwd.getpwnam(name)
            info = os.stat(account.pw_dir)
            break
        except (KeyError, OSError):
            continue
    else:
        return  # no such account yet (TLJH creates it when the server starts), or no home
    if info.st_uid == account.pw_uid and account.pw_dir != "/" and stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(account.pw_dir, stat.S_IMODE(info.st_mode) & 0o700)


c.Spawner.pre_spawn_hook = private_home
