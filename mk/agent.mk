# The agent's browser tests (issue 13). Included by the top-level Makefile; `make test` runs it.
#
#   make browser-tools   headless Chromium + chromedriver from Debian's packages (idempotent)
#
# tests/test_agent_browser.py drives the play page of `blobzero agent` in a real headless Chromium
# through chromedriver (W3C WebDriver over HTTP, tests/webdriver.py). Both come from Debian's
# `chromium` and `chromium-driver` packages: installed with apt-get when missing (root needed,
# once), a no-op when both are on PATH already.

.PHONY: browser-tools

browser-tools:
	@set -e; \
	if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then \
	  echo ">> $$(chromedriver --version 2>/dev/null | cut -d' ' -f1-2) and chromium for the browser tests"; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  echo ">> apt-get install chromium chromium-driver (the browser tests' headless Chromium; ~1 min once)"; \
	  apt-get update -q >/dev/null; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null; \
	  command -v chromedriver >/dev/null; \
	elif command -v apt-get >/dev/null 2>&1; then \
	  echo "the browser tests need chromium and chromedriver: run" >&2; \
	  echo "  sudo apt-get update && sudo apt-get install -y chromium chromium-driver" >&2; exit 1; \
	else \
	  echo "the browser tests need chromium and chromedriver on PATH (no apt-get here)" >&2; exit 1; \
	fi
