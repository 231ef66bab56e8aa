"""The Kubernetes manifests as `kubectl kustomize` renders them, for the static checks in
tests/unit/test_deploy_*.py (nothing here can be applied: there is no cluster)."""

import base64
import functools
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from annotations_service.settings import AnnotationsSettings
from datasets_service.settings import DatasetsSettings
from gateway.settings import GatewaySettings
from inference_service.settings import InferenceSettings, WorkerSettings
from servicehost.settings import CommonSettings

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
OVERLAYS = ("dev", "prod")
# What each workbench process reads (its command, without the dev overlay's restarter in front).
PROCESSES: dict[tuple[str, ...], type[CommonSettings]] = {
    ("python", "-m", "datasets_service"): DatasetsSettings,
    ("python", "-m", "inference_service", "serve"): InferenceSettings,
    ("python", "-m", "inference_service", "worker"): WorkerSettings,
    ("python", "-m", "annotations_service"): AnnotationsSettings,
    ("python", "-m", "gateway"): GatewaySettings,
}
DEV_RESTARTER = "/app/dev/dev-run"

Obj = dict[str, Any]


@functools.cache
def rendered(overlay: str) -> tuple[Obj, ...]:
    """Every object of deploy/overlays/<overlay>, rendered once per test session."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl is missing: `make kubectl` installs it (make test does)")
    done = subprocess.run(
        [kubectl, "kustomize", str(DEPLOY / "overlays" / overlay)], capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        pytest.fail(f"kubectl kustomize deploy/overlays/{overlay} failed:\n{done.stderr}")
    return tuple(obj for obj in yaml.safe_load_all(done.stdout) if obj)


def name_of(obj: Obj) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def of_kind(overlay: str, kind: str) -> list[Obj]:
    return [obj for obj in rendered(overlay) if obj["kind"] == kind]


def one(overlay: str, kind: str, name: str) -> Obj:
    found = [obj for obj in of_kind(overlay, kind) if obj["metadata"]["name"] == name]
    assert found, f"deploy/overlays/{overlay} renders no {kind}/{name}"
    return found[0]


def workloads(overlay: str) -> list[Obj]:
    return [obj for obj in rendered(overlay) if obj["kind"] in ("Deployment", "StatefulSet")]


def pod_spec(workload: Obj) -> Obj:
    spec: Obj = workload["spec"]["template"]["spec"]
    return spec


def pod_labels(workload: Obj) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"].get("labels", {})
    return labels


def containers(workload: Obj, init: bool = True) -> list[Obj]:
    spec = pod_spec(workload)
    found: list[Obj] = list(spec.get("containers", []))
    return found + list(spec.get("initContainers", [])) if init else found


def workbench_processes(overlay: str) -> Iterator[tuple[Obj, Obj, type[CommonSettings]]]:
    """(workload, container, settings class) of every workbench process in the overlay."""
    for workload in workloads(overlay):
        for container in containers(workload, init=False):
            settings = PROCESSES.get(process_command(container))
            if settings is not None:
                yield workload, container, settings


def process_command(container: Obj) -> tuple[str, ...]:
    command = tuple(container.get("command", ()))
    return command[1:] if command[:1] == (DEV_RESTARTER,) else command


def secret_value(overlay: str, name: str, key: str) -> str | None:
    """A Secret's value where the overlay renders the Secret (dev), else None (made in the cluster).
    The name is the one the manifests use, with or without the hash suffix kustomize adds to it."""
    for secret in of_kind(overlay, "Secret"):
        rendered_as = secret["metadata"]["name"]
        if re.fullmatch(rf"{re.escape(name)}(-[a-z0-9]{{10}})?", rendered_as) and key in secret.get("data", {}):
            return base64.b64decode(secret["data"][key]).decode()
    return None


def environment(overlay: str, container: Obj) -> dict[str, str]:
    """The variables the container starts with, as Kubernetes would set them. A value from a Secret the
    overlay does not render reads `<secret NAME/KEY>`, one from the pod's fields `<field PATH>`."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        config = one(overlay, "ConfigMap", source["configMapRef"]["name"])
        env.update(config.get("data", {}))
    for variable in container.get("env", []):
        if "value" in variable:
            env[variable["name"]] = str(variable["value"])
            continue
        origin = variable["valueFrom"]
        if "secretKeyRef" in origin:
            ref = origin["secretKeyRef"]
            value = secret_value(overlay, ref["name"], ref["key"])
            env[variable["name"]] = value if value is not None else f"<secret {ref['name']}/{ref['key']}>"
        elif "fieldRef" in origin:
            env[variable["name"]] = f"<field {origin['fieldRef']['fieldPath']}>"
    return env


def port_number(container: Obj, name: str) -> int | None:
    for port in container.get("ports", []):
        if port.get("name") == name:
            number: int = port["containerPort"]
            return number
    return None


def selects(selector: Obj, labels: dict[str, str]) -> bool:
    """Whether a Kubernetes label selector (matchLabels, matchExpressions) selects these labels."""
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        matched = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[operator]
        if not matched:
            return False
    return True
