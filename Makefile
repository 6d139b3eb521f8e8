# BlobZero — two commands: `make run` and `make test`. Both bootstrap everything.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.deps-installed
CORE_SOURCES := $(wildcard blobcore/*.pyx blobcore/*.pxd blobcore/search/*.pyx blobcore/search/*.pxd proto/*/*.proto) setup.py pyproject.toml

.PHONY: run test bench build clean venv

venv: $(STAMP)

# The venv is recreated from requirements.txt (exact pins; torch==2.13.0 is a local CPU wheel here).
$(STAMP): requirements.txt
	@echo ">> creating $(VENV) and installing pinned dependencies (first run: ~1 min)"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

# Cython extensions are built in place from the project's own build; nothing compiled is committed.
$(VENV)/.built: $(STAMP) $(CORE_SOURCES)
	@echo ">> building Cython extensions"
	$(PY) setup.py --quiet build_ext --inplace -j 2
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

build: $(VENV)/.built

# The embedded default: local tritonserver + self-play client + trainer for a bounded session,
# then the arena table (docs/architecture.md). ~12 minutes on a 2-core laptop, install included.
run: build
	$(VENV)/bin/blobzero loop

# deploy-tools (mk/deploy.mk) extracts Prometheus/promtool, Alertmanager/amtool and kubectl 1.29
# (the oldest supported) for the monitoring and manifest tests;
# browser-tools (mk/agent.mk) installs headless Chromium + chromedriver for the play-page tests.
test: build deploy-tools browser-tools
	$(PY) -m pytest -q

bench: build
	$(VENV)/bin/blobzero bench all

clean:
	rm -rf build $(VENV) blobcore/*.c blobcore/*.so blobcore/search/*.c blobcore/search/*.so *.egg-info

# Deployment and monitoring tooling: deploy-tools, deploy-sync, deploy-check.
include mk/deploy.mk
# The agent's browser tests: browser-tools.
include mk/agent.mk
# Images in your registry: make images REGISTRY=registry.example.com/you [BLOBZERO_TAG=...].
include mk/images.mk
