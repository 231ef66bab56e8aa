"""The Kubernetes manifests cannot be applied here (no cluster); check what can be checked statically."""

from pathlib import Path
from typing import Any

import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def base_objects() -> list[dict[str, Any]]:
    kustomization = documents(DEPLOY / "base" / "kustomization.yaml")[0]
    return [doc for name in kustomization["resources"] for doc in documents(DEPLOY / "base" / name)]


def test_every_kustomization_names_files_that_exist() -> None:
    for kustomization in DEPLOY.rglob("kustomization.yaml"):
        for resource in documents(kustomization)[0].get("resources", []):
            assert (kustomization.parent / resource).exists(), f"{kustomization}: {resource} is missing"


def test_grpc_services_have_grpc_probes_and_a_port_named_grpc() -> None:
    deployments = [d for d in base_objects() if d["kind"] == "Deployment"]
    grpc_containers = [
        c
        for d in deployments
        for c in d["spec"]["template"]["spec"]["containers"]
        if any(p.get("name") == "grpc" for p in c.get("ports", []))
    ]
    assert {c["name"] for c in grpc_containers} == {"datasets", "inference", "annotations"}
    for container in grpc_containers:
        assert "grpc" in container["readinessProbe"], container["name"]
        assert container["securityContext"]["allowPrivilegeEscalation"] is False


def test_the_base_holds_no_secret_values() -> None:
    for obj in base_objects():
        assert obj["kind"] != "Secret", f"{obj['metadata']['name']}: secrets belong to an overlay or the cluster"
