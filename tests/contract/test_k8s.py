"""The Kubernetes manifests: every overlay renders, every object is valid for Kubernetes 1.30,
and the mesh's own rules hold (non-root, read-only root, probes, resources, budgets, policies)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

pytestmark = pytest.mark.contract
K8S = Path(__file__).resolve().parents[2] / "k8s"
KUBERNETES_VERSION = "1.30"
PROCESSES = {"identity", "filing", "catalogue", "settlement", "clearing", "gateway"}
SCALED = {"gateway", "settlement", "catalogue"}


def render(overlay: str) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl (with its built-in kustomize) is not installed")
    rendered = subprocess.run(
        [kubectl, "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


def named(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_every_object_is_valid_for_kubernetes(overlay: str) -> None:
    objects = render(overlay)
    assert len(objects) > 30
    for document in objects:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_every_process_runs_locked_down_with_probes_and_resources(overlay: str) -> None:
    objects = render(overlay)
    deployments = named(objects, "Deployment")
    assert set(deployments) >= PROCESSES
    for name in PROCESSES:
        pod = deployments[name]["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["automountServiceAccountToken"] is False
        (container,) = pod["containers"]
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]
        assert {"requests", "limits"} <= set(container["resources"])
        assert container["readinessProbe"] and container["livenessProbe"]
        ports = {port["name"]: port["containerPort"] for port in container["ports"]}
        if name != "gateway":
            assert container["readinessProbe"]["grpc"]["port"] == ports["grpc"]
            assert ports["metrics"] == 9100
        assert container["image"].startswith("registry.example.cn/medsettle/medsettle:")
        assert container["args"] == ["gateway" if name == "gateway" else f"services.{name}"]
    assert set(named(objects, "Service")) >= PROCESSES
    assert set(named(objects, "PodDisruptionBudget")) >= PROCESSES
    assert set(named(objects, "HorizontalPodAutoscaler")) == SCALED


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_only_the_gateway_is_open_and_services_admit_the_gateway_and_provinces(
    overlay: str,
) -> None:
    policies = named(render(overlay), "NetworkPolicy")
    deny = policies["default-deny-ingress"]["spec"]
    assert deny["podSelector"] == {} and "ingress" not in deny
    services = policies["services-from-gateway-services-and-provinces"]["spec"]
    sources = services["ingress"][0]["from"]
    assert {"podSelector": {"matchLabels": {"medsettle.io/role": "gateway"}}} in sources
    assert {
        "namespaceSelector": {"matchLabels": {"medsettle.io/province-ingress": "true"}}
    } in sources


def test_production_commits_no_secret_and_dev_brings_its_stores() -> None:
    production = render("prod")
    assert named(production, "Secret") == {}
    assert not {"postgresql", "redis"} & set(named(production, "Service"))
    development = render("dev")
    assert {"postgresql", "redis", "otel-collector", "jaeger"} <= set(named(development, "Service"))
    assert any(name.startswith("medsettle-database") for name in named(development, "Secret"))


def test_the_dockerfile_builds_the_image_the_manifests_run() -> None:
    dockerfile = (K8S.parent / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["python", "-m"]' in dockerfile
    assert "USER 10001" in dockerfile
