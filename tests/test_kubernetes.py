"""deploy/kubernetes/, checked offline: the course on Zero to JupyterHub with ngshare and Ollama.

No cluster here: what can be checked without one is checked.
- values.yaml, merged with the chart's defaults as Helm merges them, validates against the chart's own
  schema (jupyterhub 4.4.0, vendored in deploy/kubernetes/vendor/ with its source).
- Every raw manifest passes the Kubernetes JSON schema of the targeted versions, strictly (an unknown
  field fails), with kubernetes-validate (PyPI), which ships those schemas.
- ngshare-values.yaml uses only keys of ngshare's chart 0.6.0 (its defaults, vendored).
- The names agree across files (Services, ports, labels, claims, URLs), nothing is reachable from
  outside the cluster, and every Ollama pod is behind a network policy.
- The Ollama front door runs, with Debian's nginx on loopback, in front of two Ollama doubles: the
  students' endpoints pass, everything else gets 403 and never reaches a server.
- The image installs the lock file with hashes and no resolution, and the lock pins every dependency
  of pyproject.toml within its range, with the Makefile's torch.
Each check is shown to fail on a broken copy of the file it checks.
"""

from __future__ import annotations

import ast
import copy
import re
import subprocess
import time
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import jsonschema
import pytest
import yaml
from packaging.requirements import Requirement

from tests.ollama_double import OllamaDouble
from tests.test_proxy import _free_port, _nginx, nginx_main_conf

kubernetes_validate = pytest.importorskip(
    "kubernetes_validate", reason="falta kubernetes-validate: pip install -e '.[test]'"
)

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "kubernetes"
VENDOR = K8S / "vendor"
NAMESPACE = "curso"
# The chart needs Kubernetes 1.28 or later (vendor Chart.yaml); these are the versions checked: the
# oldest the course's administrator is told to use, and the newest whose schemas kubernetes-validate has.
KUBERNETES_VERSIONS = ("1.33.0", "1.37.0")
MANIFESTS = ("ollama.yaml", "curso.yaml")
# docs/laboratorio.md, «Capacidad»: a student's server (96 MiB) with the heaviest notebook (1018 MiB) on
# the CPU, and with a CUDA kernel (1613 MiB of RAM) in the GPU profile.
MIB_PER_STUDENT_CPU = 96 + 1018
MIB_PER_STUDENT_GPU = 96 + 1613
STUDENT_ENDPOINTS = ("chat", "generate", "tags", "show", "version", "ps")


def load(name: str):
    return yaml.safe_load((K8S / name).read_text(encoding="utf-8"))


def documents(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((K8S / name).read_text(encoding="utf-8")) if d]


def all_documents() -> list[dict]:
    return [d for name in MANIFESTS for d in documents(name)]


def find(kind: str, name: str) -> dict:
    (found,) = [d for d in all_documents() if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def coalesce(defaults, values):
    """Helm's merge of a chart's defaults with the user's values: maps merge, a null deletes a key."""
    if not (isinstance(defaults, dict) and isinstance(values, dict)):
        return copy.deepcopy(values)
    merged = copy.deepcopy(defaults)
    for key, value in values.items():
        if value is None:
            merged.pop(key, None)
        elif key in merged:
            merged[key] = coalesce(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def chart_errors(values: dict) -> list[str]:
    schema = yaml.safe_load((VENDOR / "z2jh-4.4.0" / "values.schema.yaml").read_text())
    merged = coalesce(yaml.safe_load((VENDOR / "z2jh-4.4.0" / "values.yaml").read_text()), values)
    validator = jsonschema.Draft7Validator(schema)
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(merged)]


def quantity_mib(text: str) -> float:
    """A Kubernetes/KubeSpawner quantity (1.2G, 512Mi, 3G) in MiB."""
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "K": 1e3, "M": 1e6, "G": 1e9}
    number, unit = re.fullmatch(r"([\d.]+)([KMG]i?)", str(text)).groups()
    return float(number) * units[unit] / 2**20


# --- the chart's values -------------------------------------------------------------------------------


def test_values_validate_against_the_charts_own_schema():
    assert chart_errors(load("values.yaml")) == []


@pytest.mark.parametrize(
    "path, value",
    [
        (("singleuser", "memory", "limt"), "3G"),  # a misspelt key
        (("proxy", "https", "type"), "letsencript"),  # not one of the chart's types
        (("cull", "timeout"), "una hora"),  # not a number
    ],
)
def test_the_schema_check_catches_a_broken_value(path, value):
    values = load("values.yaml")
    target = values
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    assert chart_errors(values), f"el esquema del chart aceptó {'.'.join(path)}={value!r}"


def test_the_values_give_what_the_issue_asks_for():
    values = load("values.yaml")
    single = values["singleuser"]
    assert values["proxy"]["https"]["enabled"] is True and values["proxy"]["https"]["type"] == "letsencrypt"
    assert values["proxy"]["https"]["hosts"] and values["proxy"]["https"]["letsencrypt"]["contactEmail"]
    assert values["cull"]["enabled"] is True and values["cull"]["timeout"] > 0
    for resource in ("memory", "cpu"):
        assert single[resource]["guarantee"] and single[resource]["limit"]
    # Every student is guaranteed the measured memory of the heaviest notebook with its server.
    assert quantity_mib(single["memory"]["guarantee"]) >= MIB_PER_STUDENT_CPU
    assert quantity_mib(single["memory"]["limit"]) >= 2 * 1018 + 96  # two heavy notebooks at once
    profiles = {p["slug"]: p for p in single["profileList"]}
    assert set(profiles) == {"cpu", "gpu"} and profiles["cpu"].get("default") is True
    gpu = profiles["gpu"]["kubespawner_override"]
    assert gpu["extra_resource_limits"] == {"nvidia.com/gpu": "1"}
    assert quantity_mib(gpu["mem_guarantee"]) >= MIB_PER_STUDENT_GPU
    assert "nvidia.com/gpu" not in str(profiles["cpu"])
    # Spanish JupyterLab, from the language pack in the image.
    lab = single["extraFiles"]["jupyterlab-es"]
    assert lab["mountPath"].endswith("/share/jupyter/lab/settings/overrides.json")
    assert lab["data"]["@jupyterlab/translation-extension:plugin"]["locale"] == "es_ES"


def test_the_shared_cache_is_mounted_read_only_where_the_kernels_look():
    single = load("values.yaml")["singleuser"]
    (volume,) = single["storage"]["extraVolumes"]
    (mount,) = single["storage"]["extraVolumeMounts"]
    assert volume["persistentVolumeClaim"]["readOnly"] is True and mount["readOnly"] is True
    claim = find("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])
    assert "ReadWriteMany" in claim["spec"]["accessModes"]
    env = single["extraEnv"]
    cache = mount["mountPath"]
    assert env["COURSE_CACHE_DIR"] == cache and env["HF_HOME"].startswith(cache + "/")
    assert env["COURSE_WHISPER_MODEL"].startswith(cache + "/") and env["HF_HUB_OFFLINE"] == "1"
    # The Job that fills it writes to the same claim, at the same path, with the course's image.
    job = find("Job", "preparar-cache")["spec"]["template"]["spec"]
    (container,) = job["containers"]
    assert container["image"] == f"{single['image']['name']}:{single['image']['tag']}"
    assert cache in container["command"] and "course_utils.prepare_class" in container["command"]
    (job_mount,) = container["volumeMounts"]
    assert job_mount["mountPath"] == cache and not job_mount.get("readOnly")
    assert job["volumes"][0]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]


# --- nbgrader through ngshare ---------------------------------------------------------------------------


def ngshare_release_url() -> str:
    """Where ngshare's chart puts it: its Service is named after the release, on deployment.port."""
    defaults = yaml.safe_load((VENDOR / "ngshare-0.6.0" / "values.yaml").read_text())
    port = coalesce(defaults, load("ngshare-values.yaml"))["deployment"]["port"]
    return f"http://ngshare.{NAMESPACE}.svc.cluster.local:{port}"


def unknown_keys(ours: dict, defaults: dict, prefix: str = "") -> list[str]:
    """Keys the chart does not have; an empty map in its defaults (resources: {}) takes any keys."""
    unknown = []
    for key, value in ours.items():
        if key not in defaults:
            unknown.append(prefix + key)
        elif isinstance(value, dict) and isinstance(defaults[key], dict) and defaults[key]:
            unknown += unknown_keys(value, defaults[key], f"{prefix}{key}.")
    return unknown


def test_ngshare_values_use_only_keys_of_its_chart():
    defaults = yaml.safe_load((VENDOR / "ngshare-0.6.0" / "values.yaml").read_text())
    ours = load("ngshare-values.yaml")
    assert unknown_keys(ours, defaults) == []
    ours["pvc"]["storge"] = "1Gi"
    ours["ngshare"]["admin"] = ["profesor"]
    assert unknown_keys(ours, defaults) == ["ngshare.admin", "pvc.storge"]


def test_the_hub_and_nbgrader_find_ngshare_where_its_chart_puts_it():
    values = load("values.yaml")
    url = ngshare_release_url()
    assert values["hub"]["services"]["ngshare"]["url"] == url
    assert values["singleuser"]["extraEnv"]["COURSE_NGSHARE_URL"] == url + "/services/ngshare"
    # The token comes at install time, never from a file in the repository.
    assert "apiToken" not in values["hub"]["services"]["ngshare"]
    assert "hub_api_token" not in load("ngshare-values.yaml")["ngshare"]
    scopes = values["hub"]["loadRoles"]
    assert "access:services!service=ngshare" in scopes["user"]["scopes"]
    assert "access:services!service=ngshare" in scopes["server"]["scopes"]


def test_the_nbgrader_configuration_uses_ngshare_for_the_courses_id():
    source = load("values.yaml")["singleuser"]["extraFiles"]["nbgrader-ngshare"]["stringData"]
    tree = ast.parse(source)
    calls = {node.func.id for node in ast.walk(tree) if isinstance(node, ast.Call) and hasattr(node.func, "id")}
    assert "configureExchange" in calls
    one_server = (ROOT / "deploy" / "nbgrader" / "nbgrader_config.py").read_text()
    (course_id,) = re.findall(r'course_id = "([^"]+)"', one_server)
    assert f'c.CourseDirectory.course_id = "{course_id}"' in source


# --- the raw manifests ----------------------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("name", MANIFESTS)
def test_manifests_pass_the_kubernetes_schema(name, version):
    docs = documents(name)
    assert docs
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)


@pytest.mark.parametrize(
    "kind, name, breaks",
    [
        ("Deployment", "ollama-servidores", lambda d: d["spec"]["template"]["spec"].update(containerz=[])),
        ("Service", "ollama", lambda d: d["spec"]["ports"][0].update(port="once mil")),
        ("NetworkPolicy", "ngshare", lambda d: d["spec"]["ingress"][0].update({"from": "todos"})),
    ],
)
def test_the_kubernetes_schema_check_catches_a_broken_manifest(kind, name, breaks):
    doc = copy.deepcopy(find(kind, name))
    breaks(doc)
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, KUBERNETES_VERSIONS[0], strict=True)


def test_nothing_is_reachable_from_outside_the_cluster():
    docs = all_documents()
    assert {d["metadata"].get("namespace") for d in docs} == {NAMESPACE}
    assert not [d for d in docs if d["kind"] in ("Ingress", "Gateway", "HTTPRoute")]
    for service in (d for d in docs if d["kind"] == "Service"):
        spec = service["spec"]
        assert spec.get("type", "ClusterIP") == "ClusterIP", service["metadata"]["name"]
        assert not spec.get("externalIPs") and not spec.get("externalName")


def selects(policy: dict, labels: dict) -> bool:
    wanted = policy["spec"]["podSelector"].get("matchLabels", {})
    return bool(wanted) and wanted.items() <= labels.items()


def test_every_ollama_pod_is_behind_a_policy_that_admits_only_its_callers():
    policies = [d for d in all_documents() if d["kind"] == "NetworkPolicy"]
    door = find("Deployment", "ollama-puerta")["spec"]["template"]
    servers = find("Deployment", "ollama-servidores")["spec"]["template"]
    for template, caller in ((door, {"component": "singleuser-server"}), (servers, door["metadata"]["labels"])):
        (policy,) = [p for p in policies if selects(p, template["metadata"]["labels"])]
        assert policy["spec"]["policyTypes"] == ["Ingress"]
        ports = {p["containerPort"] for c in template["spec"]["containers"] for p in c["ports"]}
        for rule in policy["spec"]["ingress"]:
            assert {p["port"] for p in rule["ports"]} <= ports
            for source in rule["from"]:
                assert set(source) == {"podSelector"}  # no ipBlock, no other namespace
                assert source["podSelector"]["matchLabels"].items() <= caller.items()


def service_port(name: str) -> tuple[dict, int]:
    service = find("Service", name)
    (port,) = service["spec"]["ports"]
    return service, port["port"]


def test_the_names_agree_across_the_files():
    values = load("values.yaml")
    # The students' OLLAMA_HOST is the door's Service.
    host = urlsplit(values["singleuser"]["extraEnv"]["OLLAMA_HOST"])
    service, port = service_port("ollama")
    assert host.hostname == f"ollama.{NAMESPACE}.svc.cluster.local" and host.port == port
    door = find("Deployment", "ollama-puerta")["spec"]["template"]
    assert service["spec"]["selector"].items() <= door["metadata"]["labels"].items()
    # The door balances the headless Service of the servers.
    servers_service, servers_port = service_port("ollama-servidores")
    assert servers_service["spec"]["clusterIP"] == "None"
    conf = find("ConfigMap", "ollama-puerta")["data"]["default.conf"]
    assert f"server ollama-servidores.{NAMESPACE}.svc.cluster.local:{servers_port} resolve" in conf
    servers = find("Deployment", "ollama-servidores")["spec"]["template"]
    assert servers_service["spec"]["selector"].items() <= servers["metadata"]["labels"].items()
    # The students' egress rules name the door's and ngshare's pods, on their container ports.
    door_port = door["spec"]["containers"][0]["ports"][0]["containerPort"]
    assert re.search(rf"listen {door_port};", conf)
    egress = {
        tuple(rule["to"][0]["podSelector"]["matchLabels"].items()): rule["ports"][0]["port"]
        for rule in values["singleuser"]["networkPolicy"]["egress"]
    }
    assert egress[(("app.kubernetes.io/name", "ollama-puerta"),)] == door_port
    assert egress[(("app.kubernetes.io/name", "ngshare"),)] == urlsplit(ngshare_release_url()).port
    # ngshare's chart labels its pods app.kubernetes.io/name: ngshare (its selectorLabels).
    assert find("NetworkPolicy", "ngshare")["spec"]["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "ngshare"
    }


# --- the Ollama front door, run -------------------------------------------------------------------------


def render_door(conf: str, doubles: list[OllamaDouble], port: int) -> str:
    """The ConfigMap's nginx configuration on loopback: the doubles instead of the cluster's DNS name."""
    conf, n = re.subn(r"^\s*resolver .*\n", "", conf, flags=re.M)
    assert n == 1, "la configuración de la puerta ya no tiene «resolver»: actualiza esta prueba"
    servers = "".join(f"server {d.url.split('//')[1]} max_fails=2 fail_timeout=5s;\n" for d in doubles)
    conf, n = re.subn(r"server ollama-servidores\.\S+ resolve [^;]*;\n", servers, conf)
    assert n == 1, "la configuración de la puerta ya no tiene el «server … resolve»: actualiza esta prueba"
    conf, n = re.subn(r"listen 8080;", f"listen 127.0.0.1:{port};", conf)
    assert n == 1, "la configuración de la puerta ya no tiene «listen 8080;»: actualiza esta prueba"
    return conf


@pytest.fixture
def door(tmp_path):
    nginx = _nginx()
    if nginx is None:
        pytest.skip("no hay nginx: `make nginx` (scripts/install_debian_package.sh) lo instala desde Debian")
    doubles = [OllamaDouble().start() for _ in range(2)]
    port = _free_port()
    conf = find("ConfigMap", "ollama-puerta")["data"]["default.conf"]
    (tmp_path / "default.conf").write_text(render_door(conf, doubles, port))
    (tmp_path / "nginx.conf").write_text(nginx_main_conf(tmp_path, tmp_path / "default.conf"))
    command = [nginx, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-e", str(tmp_path / "error.log")]
    check = subprocess.run([*command, "-t"], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    process = subprocess.Popen(command, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            for _ in range(300):
                try:
                    if client.get("/").text == "Ollama is running":
                        break
                except httpx.TransportError:
                    assert process.poll() is None, process.stderr.read().decode()
                    time.sleep(0.1)
            for double in doubles:
                double.requests.clear()
            yield client, doubles
    finally:
        process.terminate()
        process.wait(timeout=30)
        for double in doubles:
            double.stop()


def reached(doubles: list[OllamaDouble]) -> list[str]:
    return [f"{r.method} {r.path}" for d in doubles for r in d.requests]


def test_the_door_passes_the_students_endpoints(door):
    client, doubles = door
    assert client.get("/api/version").json()["version"]
    assert client.get("/api/tags").json()["models"]
    assert client.post("/api/show", json={"model": "llama3.2-vision"}).status_code == 200
    chat = {"model": "llama3.2-vision", "messages": [{"role": "user", "content": "Hola"}], "stream": False}
    answer = client.post("/api/chat", json=chat)
    assert answer.status_code == 200 and "doble" in answer.json()["message"]["content"]
    client.post("/api/generate", json={"model": "llama3.2-vision", "prompt": "Hola"})
    client.get("/api/ps")
    paths = {r.split(" ")[1] for r in reached(doubles)}
    assert paths == {f"/api/{name}" for name in STUDENT_ENDPOINTS}


@pytest.mark.parametrize(
    "method, path",
    [
        ("POST", "/api/pull"),
        ("POST", "/api/push"),
        ("POST", "/api/create"),
        ("POST", "/api/copy"),
        ("DELETE", "/api/delete"),
        ("POST", "/api/blobs/sha256:0000"),
        ("POST", "/api/embed"),
        ("POST", "/api/chat/../pull"),  # nginx normalises the path before it matches
        ("GET", "/api/tags/"),
        ("POST", "/"),
        ("GET", "/v1/models"),  # the OpenAI-compatible API is not for the students either
    ],
)
def test_the_door_refuses_everything_else(door, method, path):
    client, doubles = door
    answer = client.request(method, path, json={"model": "llama3.2-vision", "name": "llama3.2-vision"})
    assert answer.status_code == 403, f"{method} {path}: {answer.status_code}"
    assert reached(doubles) == []


# --- the single-user image ------------------------------------------------------------------------------


def lock_pins(text: str) -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) of a lock file written by `uv pip compile --generate-hashes`."""
    pins = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        match = re.match(r"([A-Za-z0-9_.\-]+)==(\S+)", block)
        if match:
            pins[normalise(match[1])] = (match[2], re.findall(r"--hash=sha256:([0-9a-f]{64})", block))
    return pins


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_problems(lock: str) -> list[str]:
    """What keeps the lock file from being the same set as `make lab` for the image."""
    pins = lock_pins(lock)
    problems = [f"{name} sin hash" for name, (_, hashes) in pins.items() if not hashes]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"]]
    wanted += [
        line for line in (K8S / "imagen" / "requirements.in").read_text().splitlines() if line and line[0] != "#"
    ]
    for line in wanted:
        requirement = Requirement(line)
        version = pins.get(normalise(requirement.name), (None,))[0]
        if version is None or not requirement.specifier.contains(version, prereleases=True):
            problems.append(f"{line}: bloqueado {version}")
    (torch,) = re.findall(r"^TORCH\s*\?=\s*torch==(\S+)$", (ROOT / "Makefile").read_text(), re.M)
    if pins.get("torch", (None,))[0] != torch:
        problems.append(f"torch no es el del Makefile ({torch})")
    # jupyterhub-singleuser matches the hub of the pinned chart.
    chart = yaml.safe_load((VENDOR / "z2jh-4.4.0" / "Chart.yaml").read_text())
    if pins.get("jupyterhub", (None,))[0] != chart["appVersion"]:
        problems.append(f"jupyterhub no es el del hub del chart ({chart['appVersion']})")
    return problems


def test_the_lock_pins_every_dependency_within_its_range_with_the_makefiles_torch():
    lock = (K8S / "imagen" / "requirements.lock").read_text()
    assert lock_problems(lock) == []
    pins = lock_pins(lock)
    assert "jupyterlab-language-pack-es-es" in pins and "ngshare-exchange" in pins


@pytest.mark.parametrize(
    "pattern, replacement",
    [
        (r"^torch==\S+", "torch==2.12.0"),  # not the Makefile's torch
        (r"^transformers==\S+", "transformers==5.17.0"),  # below pyproject's range
        (r"^jupyterhub==\S+", "jupyterhub==6.1.1"),  # not the chart's hub
        (r"--hash=sha256:[0-9a-f]{64}", "--hash=sha256:"),  # hashes gone
    ],
)
def test_the_lock_check_catches_a_broken_lock(pattern, replacement):
    lock = (K8S / "imagen" / "requirements.lock").read_text()
    broken, n = re.subn(pattern, replacement, lock, flags=re.M)
    assert n and lock_problems(broken)


# --- the documentation ----------------------------------------------------------------------------------


def test_the_administrators_commands_pin_the_same_chart_versions():
    doc = (ROOT / "docs" / "laboratorio.md").read_text(encoding="utf-8")
    (start,) = [m.start() for m in re.finditer(r"^## (\d+\. )?Más de un servidor$", doc, re.M)]
    section = doc[start:]
    assert re.search(r"helm upgrade --install curso jupyterhub/jupyterhub --version 4\.4\.0\b", section)
    assert re.search(r"helm upgrade --install ngshare ngshare/ngshare --version 0\.6\.0\b", section)
    for name in ("values.yaml", "ngshare-values.yaml", "ollama.yaml", "curso.yaml"):
        assert f"deploy/kubernetes/{name}" in section
