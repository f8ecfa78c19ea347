"""The deploy files (deploy/), checked offline: images cannot be pulled here.

- the Kubernetes manifests against the Kubernetes 1.30 schemas shipped by
  kubernetes-validate (strict: unknown fields are errors);
- the compose file against the compose specification's JSON schema, as
  shipped by check-jsonschema (vendor.compose-spec, Apache-2.0);
- the configuration they mount, with `bridge check-config`, its secrets
  passed the way the deployments pass them (deploy/entrypoint.sh turns
  BRIDGE_*_FILE into BRIDGE_*);
- what the issue asks of them: StatefulSet ordinal = worker id, the seed's
  HPA, probes, budgets, limits, no secret inline, Redis as a cache.

Each check has a negative control: the same check on a broken copy fails.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose"
K8S_VERSION = "1.30.0"  # pod-index label (1.28+) is used by the StatefulSet


def manifests() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def kind(name: str) -> list[dict[str, Any]]:
    return [d for d in manifests() if d["kind"] == name]


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((COMPOSE / "compose.yaml").read_text())
    return data


def compose_schema() -> dict[str, Any]:
    vendor = resources.files("check_jsonschema.builtin_schemas.vendor")
    schema: dict[str, Any] = json.loads(vendor.joinpath("compose-spec.json").read_text())
    return schema


def k8s_problems(doc: dict[str, Any]) -> str | None:
    try:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return str(exc)
    return None


# ---------------------------------------------------------------- schemas


def test_every_manifest_passes_the_kubernetes_schema() -> None:
    docs = manifests()
    assert {d["kind"] for d in docs} >= {
        "StatefulSet",
        "Deployment",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "ConfigMap",
        "Secret",
        "Service",
        "Job",
    }
    problems = {f"{d['kind']}/{d['metadata']['name']}": k8s_problems(d) for d in docs}
    assert all(p is None for p in problems.values()), problems


def test_the_kubernetes_check_refuses_a_broken_manifest() -> None:
    broken = copy.deepcopy(kind("StatefulSet")[0])
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["paht"] = "/"
    assert k8s_problems(broken) is not None
    wrong_type = copy.deepcopy(kind("HorizontalPodAutoscaler")[0])
    wrong_type["spec"]["maxReplicas"] = "fifty"
    assert k8s_problems(wrong_type) is not None


def test_the_compose_file_passes_the_compose_schema() -> None:
    jsonschema.validate(compose(), compose_schema())


def test_the_compose_check_refuses_a_broken_file() -> None:
    broken = compose()
    broken["services"]["redis"]["restart_policy"] = "always"  # not a compose key
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, compose_schema())


# ---------------------------------------------------------------- config


def check_config(config: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`bridge check-config` through deploy/entrypoint.sh, as in the images."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    return subprocess.run(
        [
            "sh",
            str(DEPLOY / "entrypoint.sh"),
            sys.executable,
            "-m",
            "bridge.cli",
            "--config",
            str(config),
            "check-config",
        ],
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def secret_files(tmp: Path) -> dict[str, str]:
    """The compose services' *_FILE variables, pointing at made-up secrets."""
    url = tmp / "database_url"
    url.write_text("postgresql://bridge:0123abcd@db:5432/telemetry\n")
    password = tmp / "password"
    password.write_text("4567ef\n")
    return {
        "BRIDGE_DATABASE__URL_FILE": str(url),
        "BRIDGE_MQTT__PASSWORD_FILE": str(password),
        "BRIDGE_API__BROKER__PASSWORD_FILE": str(password),
    }


def test_the_compose_config_is_accepted(tmp_path: Path) -> None:
    done = check_config(COMPOSE / "bridge.toml", secret_files(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "configuration is valid (database postgresql://bridge:***@db:5432" in done.stdout


def test_the_kubernetes_config_is_accepted(tmp_path: Path) -> None:
    (cm,) = kind("ConfigMap")
    config = tmp_path / "bridge.toml"
    config.write_text(cm["data"]["bridge.toml"])
    env = {
        "BRIDGE_DATABASE__URL": "postgresql://bridge:x@timescaledb:5432/telemetry",
        "BRIDGE_MQTT__PASSWORD": "x",
        "BRIDGE_MQTT__GROUP": "g7f3c9a1e",
        "BRIDGE_API__BROKER__PASSWORD": "x",
    }
    done = check_config(config, env)
    assert done.returncode == 0, done.stderr


def test_a_bad_mounted_config_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "bridge.toml"
    config.write_text((COMPOSE / "bridge.toml").read_text() + "\n[redis]\nmaxmemory = 1\n")
    done = check_config(config, secret_files(tmp_path))
    assert done.returncode == 1
    assert "bridge: error" in done.stderr


def test_an_unreadable_secret_file_is_named(tmp_path: Path) -> None:
    done = check_config(
        COMPOSE / "bridge.toml", {"BRIDGE_DATABASE__URL_FILE": str(tmp_path / "missing")}
    )
    assert done.returncode == 1
    assert "BRIDGE_DATABASE__URL_FILE names" in done.stderr


# ---------------------------------------------------------------- Kubernetes


def test_the_bridge_pod_ordinal_is_its_worker_id() -> None:
    (sts,) = kind("StatefulSet")
    (container,) = sts["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["bridge", "run", "--worker", "$(WORKER)"]
    env = {e["name"]: e for e in container["env"]}
    assert env["WORKER"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.labels['apps.kubernetes.io/pod-index']"
    )
    assert "exec" in container["lifecycle"]["preStop"]
    grace = sts["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    (cm,) = kind("ConfigMap")
    toml = cm["data"]["bridge.toml"]
    shutdown = float(re.search(r"grace_s = ([0-9.]+)", toml).group(1))  # type: ignore[union-attr]
    assert grace > shutdown, "the pod must outlive the bridge's own drain"
    (job,) = kind("Job")
    assert job["spec"]["template"]["spec"]["containers"][0]["args"][:3] == [
        "bridge",
        "retire",
        "--worker",
    ]


def test_the_api_scales_as_the_seed_says() -> None:
    (hpa,) = kind("HorizontalPodAutoscaler")
    spec = hpa["spec"]
    assert (spec["minReplicas"], spec["maxReplicas"]) == (3, 50)
    targets = {m["resource"]["name"]: m["resource"]["target"] for m in spec["metrics"]}
    assert targets["cpu"]["averageUtilization"] == 70
    assert targets["memory"]["averageUtilization"] == 80
    (deployment,) = kind("Deployment")
    assert spec["scaleTargetRef"]["name"] == deployment["metadata"]["name"]


def test_probes_limits_and_budgets() -> None:
    budgets = kind("PodDisruptionBudget")
    for workload in kind("StatefulSet") + kind("Deployment"):
        pod = workload["spec"]["template"]
        for c in pod["spec"]["containers"]:
            assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
            assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
            assert {"cpu", "memory"} <= c["resources"]["requests"].keys()
            assert {"cpu", "memory"} <= c["resources"]["limits"].keys()
        labels = pod["metadata"]["labels"]
        assert any(
            b["spec"]["selector"]["matchLabels"].items() <= labels.items() for b in budgets
        ), f"no PodDisruptionBudget selects {workload['metadata']['name']}"


def test_no_secret_value_is_inline_in_a_manifest() -> None:
    for secret in kind("Secret"):
        assert all("REPLACE" in v for v in secret["stringData"].values())
    for workload in kind("StatefulSet") + kind("Deployment") + kind("Job"):
        for c in workload["spec"]["template"]["spec"]["containers"]:
            for e in c["env"]:
                if re.search(r"PASSWORD|URL|GROUP", e["name"]):
                    assert "secretKeyRef" in e["valueFrom"], e


# ---------------------------------------------------------------- compose


def test_compose_secrets_come_from_files() -> None:
    data = compose()
    for name, secret in data["secrets"].items():
        assert secret["file"].startswith("./secrets/"), name
    for name, service in data["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if re.search(r"PASSWORD|URL", key):
                assert key.endswith("_FILE"), (name, key)
                assert value.startswith("/run/secrets/"), (name, key)
    assert "secrets/" in (COMPOSE / ".gitignore").read_text()


def test_compose_mounts_exist_in_the_repository() -> None:
    for name, service in compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith(".") and source != "./secrets":
                assert (COMPOSE / source).exists(), f"{name} mounts {source}, which is missing"


def test_redis_is_a_bounded_cache_without_persistence() -> None:
    conf = dict(
        line.split(None, 1)
        for line in (COMPOSE / "redis.conf").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert conf["maxmemory-policy"] == "allkeys-lru"
    assert conf["maxmemory"] != "0"
    assert conf["save"] == '""'
    assert conf["appendonly"] == "no"


def test_prometheus_loads_the_project_rules() -> None:
    prom = yaml.safe_load((COMPOSE / "prometheus.yml").read_text())
    assert prom["rule_files"] == ["rules/*.yml"]
    mounts = compose()["services"]["prometheus"]["volumes"]
    assert "../../dashboards/prometheus/rules:/etc/prometheus/rules:ro" in mounts
    assert list((ROOT / "dashboards/prometheus/rules").glob("*.yml"))
