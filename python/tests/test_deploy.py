"""The Kubernetes manifests validate against the Kubernetes schemas (no
cluster runs here), the kustomization lists them, and the ConfigMap's agent
settings load without error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from pgautomator.config import load_config, read_file

KUBERNETES = Path(__file__).resolve().parents[1] / "kubernetes"
kubernetes_validate = pytest.importorskip("kubernetes_validate")


def load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((KUBERNETES / name).read_text())
    assert isinstance(data, dict)
    return data


def resources() -> list[str]:
    listed = load("kustomization.yaml")["resources"]
    assert isinstance(listed, list)
    return [str(item) for item in listed]


def test_kustomization_lists_every_manifest() -> None:
    files = {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(resources()) == files


@pytest.mark.parametrize("name", ["configmap.yaml", "secret.yaml", "deployment.yaml"])
def test_manifest_is_valid(name: str) -> None:
    version = kubernetes_validate.latest_version()
    kubernetes_validate.validate(load(name), version, strict=True)


def test_invalid_manifest_is_caught() -> None:
    # The check above can fail: a misspelt field is rejected in strict mode.
    bad = load("deployment.yaml")
    bad["spec"]["replica"] = bad["spec"].pop("replicas")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, kubernetes_validate.latest_version(), strict=True)


def test_configmap_holds_valid_agent_settings(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(load("configmap.yaml")["data"]["agent.yaml"])
    config = load_config({}, {}, str(path))
    assert (
        config.grace_period
        < load("deployment.yaml")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    )
    assert "password" not in " ".join(read_file(str(path)))


def test_deployment_wiring() -> None:
    spec = load("deployment.yaml")["spec"]["template"]["spec"]
    container = spec["containers"][0]
    assert container["args"] == ["--config", "/etc/pgautomator/agent.yaml"]
    secret_ref = container["env"][0]["valueFrom"]["secretKeyRef"]
    assert secret_ref == {"name": load("secret.yaml")["metadata"]["name"], "key": "PGPASSWORD"}
    assert spec["volumes"][0]["configMap"]["name"] == load("configmap.yaml")["metadata"]["name"]


def test_example_settings_load() -> None:
    config = load_config({}, {}, str(KUBERNETES.parent / "agent.example.yaml"))
    assert config.name == "build01"
    assert config.capabilities == ("shell", "remote_sql")


def test_systemd_unit_keeps_settings_errors_from_looping() -> None:
    unit = (KUBERNETES.parent / "systemd" / "pgautomator-agent.service").read_text()
    assert "RestartPreventExitStatus=2" in unit
    assert "KillMode=mixed" in unit
