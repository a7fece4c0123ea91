# Every target sets itself up on a fresh machine: it creates .venv and installs what it needs.
# On the GPU lab server use the CUDA build of torch:  make lab TORCH=torch
PYTHON ?= python3
TORCH  ?= torch==2.13.0
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q
PORT   ?= 8888
# Jupyter refuses to run as root without this flag (containers, CI); students never need it.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)

.PHONY: lab test demo bench browser clean help nginx hub-deps test-hub install-hub cuadernos test-gpu
help:
	@echo "make lab    JupyterLab con los cuadernos en http://127.0.0.1:$(PORT) (con token)"
	@echo "make test   todas las pruebas (unitarias, cuadernos con nbval, navegador)"
	@echo "make demo   el chat como página web con Voilà en http://127.0.0.1:3000"
	@echo "make bench  las mediciones de velocidad de benchmarks/"
	@echo "make cuadernos  genera notebooks/ (versión del estudiante) desde instructor/source/ con nbgrader"
	@echo "make test-hub     la prueba de integración con un JupyterHub real (3 usuarios)"
	@echo "make install-hub  instala el JupyterHub del curso en el servidor (deploy/, como root)"
	@echo "make test-gpu     las pruebas y los cuadernos en la GPU del servidor (PyTorch con CUDA)"

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install "$(TORCH)"
	$(PIP) install -e ".[test,bench]"
	touch $@

lab: $(VENV)/.installed
	$(VENV)/bin/jupyter lab --ServerApp.root_dir=notebooks --ServerApp.ip=127.0.0.1 --port=$(PORT) --no-browser $(ROOT_FLAG)

# The student notebooks (notebooks/) from the instructor sources (instructor/source/), with
# `nbgrader generate_assignment`. It runs in a copy of the course directory, so the teacher's
# release/ and gradebook in instructor/ stay as they are. Run it after editing a source notebook;
# tests/test_coursework.py fails while notebooks/ differs from what it generates.
CUADERNOS_TMP := .cache/cuadernos
cuadernos: $(VENV)/.installed
	rm -rf $(CUADERNOS_TMP) && mkdir -p $(CUADERNOS_TMP)
	cp -R instructor/nbgrader_config.py instructor/source $(CUADERNOS_TMP)/
	cd $(CUADERNOS_TMP) && PATH="$(CURDIR)/$(VENV)/bin:$$PATH" "$(CURDIR)/$(PY)" -m nbgrader generate_assignment "*" --force --log-level=WARN
	cp $(CUADERNOS_TMP)/release/*/*.ipynb notebooks/
	cp $(CUADERNOS_TMP)/release/*/*.md notebooks/
	rm -rf $(CUADERNOS_TMP)

browser:
	bash scripts/install_debian_package.sh chromium chromium "Las pruebas de navegador se saltarán"

test: $(VENV)/.installed browser nginx
	$(PY) -m pytest -m "not hub"

# nginx from Debian, for the reverse proxy in front of several Ollama servers (tests/test_proxy.py).
nginx:
	bash scripts/install_debian_package.sh nginx nginx "La prueba del proxy inverso se saltará"

# JupyterHub (PyPI) and configurable-http-proxy (npm, into a local folder) for tests/test_hub.py.
HUB_NODE := .cache/hub-node
CHP      := $(HUB_NODE)/node_modules/.bin/configurable-http-proxy
$(VENV)/.hub-installed: $(VENV)/.installed pyproject.toml
	$(PIP) install -e ".[test,bench,hub]"
	touch $@
$(CHP):
	npm install --prefix $(HUB_NODE) --no-audit --no-fund --loglevel=error configurable-http-proxy@5
hub-deps: $(VENV)/.hub-installed $(CHP)

test-hub: hub-deps
	COURSE_HUB_REQUIRED=1 COURSE_CHP=$(CHP) $(PY) -m pytest -m hub tests/test_hub.py

# On the lab server (CUDA build of torch): the unit suite and the notebooks on the GPU.
test-gpu: $(VENV)/.installed
	bash scripts/test_gpu.sh

# On the lab server, as root: the course's JupyterHub (see docs/laboratorio.md).
install-hub:
	bash deploy/install_hub.sh

demo: $(VENV)/.installed
	$(VENV)/bin/voila notebooks/07_chat_multimodal.ipynb --Voila.ip=127.0.0.1 --port=3000 --no-browser

bench: $(VENV)/.installed
	for f in benchmarks/bench_*.py; do $(PY) $$f || exit 1; done

clean:
	rm -rf $(VENV) .cache test-artifacts
