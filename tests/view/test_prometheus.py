"""The Prometheus side: the rule files and the example config pass promtool
(Debian's prometheus package), every expression of the dashboards does too,
every metric they name is one a running bridge, API or edge agent exports,
and a real Prometheus scraping an ingesting bridge evaluates the ingest-rate
recording rule to a non-zero value."""

from __future__ import annotations

import re
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from bridge.alarms.service import Evaluator
from bridge.config import DatabaseSettings, Settings
from tests.integration.harness import free_port_block, wait_until
from tests.view.conftest import Flowing
from tests.view.grafana import DASHBOARDS, dashboards, panels

PROMETHEUS_DIR = DASHBOARDS / "prometheus"
RULE_FILES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
INGEST_RULE = "job:telemetry_points:rate1m"

# Words of PromQL that look like metric names (aggregations and functions are
# recognised by the parenthesis after them).
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and",
             "or", "unless", "offset", "inf", "nan"}  # fmt: skip
# Prometheus makes this one itself for every target.
_SYNTHETIC = {"up"}


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(
            f"{tool} is not installed (Debian package prometheus; scripts/stack.sh installs it)"
        )
    return path


def _rules() -> list[dict[str, Any]]:
    return [
        r for f in RULE_FILES for g in yaml.safe_load(f.read_text())["groups"] for r in g["rules"]
    ]


def _dashboard_exprs() -> list[str]:
    return [
        t["expr"]
        for d in dashboards().values()
        for p in panels(d)
        for t in p.get("targets", [])
        if "expr" in t
    ]


def _as_grafana_sends(expr: str) -> str:
    # Grafana replaces $__rate_interval with a duration before Prometheus sees it.
    return expr.replace("$__rate_interval", "1m")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range durations
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = set()
    for m in re.finditer(r"(?<![\w.])[a-zA-Z_:][a-zA-Z0-9_:]*", expr):
        followed_by_call = expr[m.end() :].lstrip().startswith("(")
        if not followed_by_call and m[0] not in _KEYWORDS:
            names.add(m[0])
    return names


def test_metric_names_are_read_from_promql() -> None:
    assert metric_names(
        'sum by (job, le) (rate(a_total{status=~"5.."}[5m] offset 1h)) / on (job) b:c > 0.5 '
        "and histogram_quantile(0.9, x_bucket) > 1e3"
    ) == {"a_total", "b:c", "x_bucket"}


def test_rule_files_and_example_config_pass_promtool() -> None:
    promtool = _need("promtool")
    assert RULE_FILES
    rules = subprocess.run(
        [promtool, "check", "rules", *map(str, RULE_FILES)],
        check=False,
        capture_output=True,
        text=True,
    )
    assert rules.returncode == 0, rules.stdout + rules.stderr
    config = subprocess.run(
        [promtool, "check", "config", str(PROMETHEUS_DIR / "prometheus.yml")],
        check=False,
        capture_output=True,
        text=True,
    )
    assert config.returncode == 0, config.stdout + config.stderr
    assert f"{len(RULE_FILES)} rule files found" in config.stdout


def test_dashboard_expressions_pass_promtool(tmp_path: Path) -> None:
    """promtool checks PromQL inside rule files, so each expression of the
    dashboards becomes a recording rule of a scratch file."""
    promtool = _need("promtool")
    exprs = _dashboard_exprs()
    assert len(exprs) >= 20
    scratch = tmp_path / "dashboard-exprs.yml"
    rules = [
        {"record": f"dashboard:expr_{i}", "expr": _as_grafana_sends(e)} for i, e in enumerate(exprs)
    ]
    scratch.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    check = subprocess.run(
        [promtool, "check", "rules", str(scratch)], check=False, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"{len(exprs)} rules found" in check.stdout


def _exported(url: str) -> set[str]:
    """Every series name an endpoint exports, labelled metrics without
    children yet included (their # TYPE line says they exist)."""
    with urllib.request.urlopen(url, timeout=10) as r:
        return _names(r.read().decode())


def _names(text: str) -> set[str]:
    names: set[str] = set()
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"],
                "summary": ["_sum", "_count", ""], "gauge": [""], "untyped": [""]}  # fmt: skip
    for family in text_string_to_metric_families(text):
        names.update(family.name + s for s in suffixes[family.type])
        names.update(s.name for s in family.samples)
    return names


def _evaluator_exports() -> set[str]:
    """What `bridge alarms run` exports of its own (the notifier adds its
    counters when it runs)."""
    registry = Evaluator(Settings(database=DatabaseSettings(url="postgresql://x/y"))).registry  # type: ignore[call-arg]
    return _names(generate_latest(registry).decode())


def test_every_metric_used_is_exported(flowing: Flowing) -> None:
    exported = (
        _exported(flowing.bridge.url("/metrics"))
        | _exported(f"http://127.0.0.1:{flowing.api.port}/metrics")
        | _exported(f"http://127.0.0.1:{flowing.agent.status_port}/metrics")
        | _evaluator_exports()
    )
    assert "bridge_alarm_behind_seconds" in exported
    rules = _rules()
    recorded = {r["record"] for r in rules if "record" in r}
    used: dict[str, set[str]] = {}
    for expr in _dashboard_exprs() + [r["expr"] for r in rules]:
        for name in metric_names(expr):
            used.setdefault(name, set()).add(expr)
    assert {
        "telemetry_points_total",
        "http_request_duration_seconds_bucket",
        "edge_spool_readings",
    } <= set(used)
    missing = {n: e for n, e in used.items() if n not in exported | recorded | _SYNTHETIC}
    assert not missing, f"not exported by the bridge, the API or the agent: {missing}"


@pytest.fixture
def prometheus(flowing: Flowing, tmp_path: Path) -> Iterator[str]:
    """A real Prometheus with the example config's jobs and the rule files,
    pointed at the running stack, scraping and evaluating every second."""
    binary = _need("prometheus")
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(f) for f in RULE_FILES]
    targets = {
        "bridge": f"127.0.0.1:{flowing.bridge.http_port}",
        "bridge-api": f"127.0.0.1:{flowing.api.port}",
        "edge-agent": f"127.0.0.1:{flowing.agent.status_port}",
    }
    # The flowing stack runs no alarm evaluator (its exports are checked above).
    config["scrape_configs"] = [j for j in config["scrape_configs"] if j["job_name"] in targets]
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": [targets[job["job_name"]]]}]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    port = free_port_block(1)
    log = (tmp_path / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={path}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=log,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: _get(base + "/-/ready") is not None or proc.poll() is not None,
            30,
            "Prometheus ready",
        )
        assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()[-3000:]
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _get(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            body = r.read()
    except (urllib.error.URLError, OSError):
        return None
    return orjson.loads(body) if body.startswith(b"{") else body


def _query(base: str, promql: str) -> list[dict[str, Any]]:
    doc = _get(f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": promql}))
    return [] if doc is None else list(doc["data"]["result"])


def test_prometheus_evaluates_the_ingest_rate_while_the_bridge_ingests(
    flowing: Flowing, prometheus: str
) -> None:
    def ingest_rate() -> float:
        result = _query(prometheus, f'{INGEST_RULE}{{job="bridge"}}')
        return float(result[0]["value"][1]) if result else 0.0

    wait_until(lambda: ingest_rate() > 0, 60, f"{INGEST_RULE} above zero")
    # The simulated fleet sends about DEVICES x RATE x 3 points a second.
    assert 0 < ingest_rate() < 1000

    def all_targets_up() -> bool:
        return {r["metric"]["job"] for r in _query(prometheus, "up == 1")} == {
            "bridge", "bridge-api", "edge-agent"
        }  # fmt: skip

    wait_until(all_targets_up, 30, "every target scraped")
    # Every rule evaluates without error against the real series.
    groups = _get(prometheus + "/api/v1/rules")["data"]["groups"]
    health = {r["name"]: (r["health"], r.get("lastError", "")) for g in groups for r in g["rules"]}
    assert len(health) == len(_rules())
    wait_until(
        lambda: all(
            r["health"] == "ok"
            for g in _get(prometheus + "/api/v1/rules")["data"]["groups"]
            for r in g["rules"]
        ),
        30,
        f"every rule evaluated: {health}",
    )
