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

.PHONY: lab slides test demo web bench browser clean help nginx hub-deps test-hub install-hub cuadernos test-gpu
help:
	@echo "make lab    JupyterLab en castellano con los cuadernos en http://127.0.0.1:$(PORT) (con token; ROL=profesor)"
	@echo "make slides N=03  la lección 03 como diapositivas (RISE) en http://127.0.0.1:$(PORT)/rise/…"
	@echo "make test   todas las pruebas (unitarias, cuadernos con nbval, navegador)"
	@echo "make demo   el chat como página web con Voilà en http://127.0.0.1:3000 (DEMO=clasificador, DEMO=dictado)"
	@echo "make web    el sitio web del curso en build/web/html (lecciones ejecutadas, glosario, laboratorio)"
	@echo "make bench  las mediciones de velocidad de benchmarks/"
	@echo "make cuadernos  genera notebooks/ (versión del estudiante) desde instructor/source/ con nbgrader"
	@echo "make test-hub     la prueba de integración con un JupyterHub real y cuentas Unix separadas (root)"
	@echo "make install-hub  instala el JupyterHub del curso en el servidor (deploy/, como root)"
	@echo "make test-gpu     las pruebas y los cuadernos en la GPU del servidor (PyTorch con CUDA)"

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install "$(TORCH)"
	$(PIP) install -e ".[test,bench,web]"
	touch $@

# JupyterLab in Spanish, without the news popup (jupyter/lab/settings/overrides.json), and for a student
# without nbgrader's teacher tools (jupyter/estudiante/); `make lab ROL=profesor` keeps them (jupyter/profesor/).
# The course's notebooks are trusted first, so the server does not log them as «not trusted».
ROL ?= estudiante
lab: $(VENV)/.installed
	@test -d jupyter/$(ROL) || { echo "No hay ningún rol «$(ROL)»: usa ROL=estudiante o ROL=profesor."; exit 2; }
	$(VENV)/bin/jupyter trust --log-level=ERROR notebooks/*.ipynb > /dev/null
	JUPYTER_CONFIG_PATH="$(CURDIR)/jupyter/$(ROL)" $(VENV)/bin/jupyter lab --LabApp.app_settings_dir="$(CURDIR)/jupyter/lab/settings" --ServerApp.root_dir=notebooks --ServerApp.ip=127.0.0.1 --port=$(PORT) --no-browser $(ROOT_FLAG)

# A lesson as slides (jupyterlab-rise, Reveal.js): the same JupyterLab as `make lab`, opened on /rise/<lesson>;
# each cell's `slideshow.slide_type` metadata (scripts/slide_metadata.py) makes the slides. N is the lesson's
# number (its prefix in notebooks/). The URL, token included, is printed and opened in the browser.
N ?=
SLIDES_NB = $(notdir $(firstword $(wildcard notebooks/$(N)_*.ipynb)))
slides: $(VENV)/.installed
	@test -d jupyter/$(ROL) || { echo "No hay ningún rol «$(ROL)»: usa ROL=estudiante o ROL=profesor."; exit 2; }
	@test -n "$(N)" -a -n "$(SLIDES_NB)" || { echo "No hay ninguna lección «$(N)»: usa N=00 … N=08 (el número del cuaderno en notebooks/)."; exit 2; }
	$(VENV)/bin/jupyter trust --log-level=ERROR notebooks/*.ipynb > /dev/null
	JUPYTER_CONFIG_PATH="$(CURDIR)/jupyter/$(ROL)" $(VENV)/bin/jupyter lab --LabApp.app_settings_dir="$(CURDIR)/jupyter/lab/settings" --ServerApp.root_dir=notebooks --ServerApp.ip=127.0.0.1 --port=$(PORT) --LabApp.default_url="/rise/$(SLIDES_NB)" $(ROOT_FLAG)

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

# Two steps: the default suite, then the slow integration tests (real weights, the wheel, every lexer…).
test: $(VENV)/.installed browser nginx
	$(PY) -m pytest -m "not hub and not slow"
	$(PY) -m pytest -m "slow and not hub"

# nginx from Debian, for the reverse proxy in front of several Ollama servers (tests/test_proxy.py), and
# nftables for the rules that close Ollama's own ports to the students (the same file).
nginx:
	bash scripts/install_debian_package.sh nginx nginx "La prueba del proxy inverso se saltará"
	bash scripts/install_debian_package.sh nftables nft "La prueba de los puertos propios de Ollama se saltará"

# JupyterHub (PyPI) and configurable-http-proxy (npm, into a local folder) for tests/test_hub.py.
HUB_NODE := .cache/hub-node
CHP      := $(HUB_NODE)/node_modules/.bin/configurable-http-proxy
$(VENV)/.hub-installed: $(VENV)/.installed pyproject.toml
	$(PIP) install -e ".[test,bench,web,hub]"
	touch $@
$(CHP):
	npm install --prefix $(HUB_NODE) --no-audit --no-fund --loglevel=error configurable-http-proxy@5
hub-deps: $(VENV)/.hub-installed $(CHP)

test-hub: hub-deps
	COURSE_HUB_REQUIRED=1 COURSE_CHP=$(CHP) $(PY) -m pytest -m hub tests/test_hub.py tests/test_lab_accounts.py

# On the lab server (CUDA build of torch): the unit suite and the notebooks on the GPU.
test-gpu: $(VENV)/.installed
	bash scripts/test_gpu.sh

# On the lab server, as root: the course's JupyterHub (see docs/laboratorio.md).
install-hub:
	bash deploy/install_hub.sh

# A demo page alone (demos/, Voilà with the course's template in demos/share/): DEMO=chat (the default),
# DEMO=clasificador or DEMO=dictado, on the old chatbot's port.
DEMO ?= chat
demo: $(VENV)/.installed
	@test -f demos/$(DEMO).ipynb || { echo "No hay ninguna demostración «$(DEMO)»: usa DEMO=chat, DEMO=clasificador o DEMO=dictado."; exit 2; }
	JUPYTER_PATH="$(CURDIR)/demos/share" $(VENV)/bin/voila demos/$(DEMO).ipynb --template=demo --Voila.ip=127.0.0.1 --port=3000 --no-browser

# The course's website in build/web/html/ (web/build.py): the student notebooks executed against the test
# stand-ins, README, the glossary and docs/laboratorio.md; Sphinx with MyST-NB, MathJax from npm, offline.
web: $(VENV)/.installed
	$(PY) web/build.py build/web
	@echo "Ábrelo con: $(PY) -m http.server -d build/web/html -b 127.0.0.1 8000"

bench: $(VENV)/.installed
	for f in benchmarks/bench_*.py; do $(PY) $$f || exit 1; done

clean:
	rm -rf $(VENV) .cache test-artifacts
