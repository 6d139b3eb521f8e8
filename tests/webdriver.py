"""A small W3C WebDriver client for the browser tests: real headless Chromium via chromedriver.

WebDriver is plain JSON over HTTP (what Selenium speaks to chromedriver), so a few calls through
``requests`` cover what the tests need — open a page, find elements by CSS, click, read text and
attributes, run a script, take a screenshot — without Selenium's dependency tree. Chromium and
chromedriver come from Debian's packages (``make browser-tools``, mk/agent.mk).
"""
from __future__ import annotations

import base64
import shutil
import subprocess
import time
from pathlib import Path

import requests

ELEMENT = "element-6066-11e4-a52e-4f735466cecf"     # the W3C element reference key


def find_browser() -> tuple[str, str]:
    """(chromium, chromedriver) paths; AssertionError naming the missing one and the fix."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    missing = [name for name, path in (("chromium", chromium), ("chromedriver", driver)) if not path]
    assert not missing, f"{' and '.join(missing)} not found: run `make browser-tools` (apt: chromium chromium-driver)"
    return chromium, driver


class WebDriverError(RuntimeError):
    pass


class Browser:
    """One headless Chromium session. ``with Browser(port) as b: b.get(url) ...``"""

    def __init__(self, driver_port: int, log_path: Path, width: int = 1280, height: int = 1000):
        chromium, driver = find_browser()
        self._log = open(log_path, "w")
        self.process = subprocess.Popen([driver, f"--port={driver_port}"], stdout=self._log,
                                        stderr=subprocess.STDOUT)
        self.base = f"http://127.0.0.1:{driver_port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                if requests.get(f"{self.base}/status", timeout=1).json()["value"]["ready"]:
                    break
            except (requests.RequestException, ValueError, KeyError):
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.close()
                raise WebDriverError(f"chromedriver did not start: see {log_path}")
            time.sleep(0.1)
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     f"--window-size={width},{height}"]}}}}
        self.session = self._call("POST", "/session", caps, prefix=False)["sessionId"]

    def _call(self, method: str, path: str, body: dict | None = None, prefix: bool = True):
        url = f"{self.base}/session/{self.session}{path}" if prefix else f"{self.base}{path}"
        response = requests.request(method, url, json=body if body is not None else {}, timeout=60)
        value = response.json().get("value")
        if response.status_code != 200:
            raise WebDriverError(f"{method} {path}: {value}")
        return value

    # -- the calls the tests use ---------------------------------------------------------
    def get(self, url: str) -> None:
        self._call("POST", "/url", {"url": url})

    def find_all(self, css: str) -> list[str]:
        return [e[ELEMENT] for e in self._call("POST", "/elements", {"using": "css selector", "value": css})]

    def find(self, css: str) -> str:
        found = self.find_all(css)
        if not found:
            raise WebDriverError(f"no element matches {css!r}")
        return found[0]

    def click(self, element: str) -> None:
        self._call("POST", f"/element/{element}/click")

    def text(self, element: str) -> str:
        return self._call("GET", f"/element/{element}/text")

    def attribute(self, element: str, name: str) -> str | None:
        return self._call("GET", f"/element/{element}/attribute/{name}")

    def enabled(self, element: str) -> bool:
        return self._call("GET", f"/element/{element}/enabled")

    def select(self, css: str, value: str) -> None:
        """Choose ``value`` in the <select> at ``css`` (as a click would, firing 'change')."""
        self.script("const s = document.querySelector(arguments[0]); s.value = arguments[1];"
                    "s.dispatchEvent(new Event('change'));", css, value)

    def type(self, element: str, text: str) -> None:
        self._call("POST", f"/element/{element}/value", {"text": text})

    def script(self, source: str, *args):
        return self._call("POST", "/execute/sync", {"script": source, "args": list(args)})

    def screenshot(self, path: Path) -> Path:
        path.write_bytes(base64.b64decode(self._call("GET", "/screenshot")))
        return path

    def wait_for(self, predicate, timeout: float = 30.0, what: str = "the page"):
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise WebDriverError(f"timed out after {timeout} s waiting for {what}")
            time.sleep(0.05)

    def close(self) -> None:
        if getattr(self, "session", None):
            try:
                self._call("DELETE", "")
            except (requests.RequestException, WebDriverError):
                pass
            self.session = None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self._log.close()

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
