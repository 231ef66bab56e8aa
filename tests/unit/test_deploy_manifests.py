"""The Kubernetes manifests cannot be applied here (no cluster): both overlays are rendered with
`kubectl kustomize` and checked for what would keep them from coming up or from being safe."""

import os
import re
import subprocess
import tomllib
from pathlib import Path

import kubernetes_validate
import pytest

from devstack.natsserver import nats_server_binary
from gateway.settings import GatewaySettings
from tests.unit.deploy_render import (
    DEPLOY,
    OVERLAYS,
    REPO,
    Obj,
    containers,
    environment,
    name_of,
    of_kind,
    one,
    pod_labels,
    pod_spec,
    port_number,
    rendered,
    secret_value,
    selects,
    workbench_processes,
    workloads,
)

# The oldest Kubernetes the manifests are meant for (gRPC probes, Pod Security labels) and the newest
# kubernetes-validate knows.
KUBERNETES_VERSIONS = ("1.28.0", kubernetes_validate.latest_version())
DEPLOY_DOC = (REPO / "docs" / "deploy.md").read_text()
GPU_MODELS = tomllib.loads((REPO / "config" / "models.gpu.example.toml").read_text())["models"]
SECRET_ENV = ("WB_NATS_PASSWORD", "WB_API_TOKEN", "WB_SESSION_SECRET", "WB_LABEL_STUDIO_TOKEN", "HF_TOKEN")


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_object_is_valid_kubernetes(overlay: str, version: str) -> None:
    problems = []
    for obj in rendered(overlay):
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            problems.append(f"{name_of(obj)}: {'.'.join(map(str, error.path))}: {error.message}")
    assert problems == [], f"deploy/overlays/{overlay} against Kubernetes {version}:\n" + "\n".join(problems)


# --- NATS ---------------------------------------------------------------------------------------


def nats_files(overlay: str) -> dict[str, str]:
    nats = one(overlay, "StatefulSet", "nats")
    [config] = [v["configMap"]["name"] for v in pod_spec(nats)["volumes"] if "configMap" in v]
    data: dict[str, str] = one(overlay, "ConfigMap", config)["data"]
    return data


def without_comments(text: str) -> str:
    return "\n".join(line.split("#", 1)[0] for line in text.splitlines())


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_nats_servers_start_together_and_find_each_other(overlay: str) -> None:
    nats = one(overlay, "StatefulSet", "nats")
    replicas = nats["spec"]["replicas"]
    assert nats["spec"].get("podManagementPolicy") == "Parallel", (
        f"{overlay}: StatefulSet/nats starts its pods in order: nats-0 waits to be ready, which needs a quorum"
    )
    headless = one(overlay, "Service", nats["spec"]["serviceName"])
    assert headless["spec"].get("clusterIP") == "None", (
        f"{overlay}: Service/{headless['metadata']['name']} is not headless"
    )
    assert headless["spec"].get("publishNotReadyAddresses") is True, (
        f"{overlay}: Service/{headless['metadata']['name']} hides servers that are not ready: they cannot find peers"
    )
    config = without_comments(nats_files(overlay)["cluster.conf"])
    if replicas == 1:
        assert "cluster" not in config, f"{overlay}: one NATS server, yet cluster.conf has a cluster block"
        return
    cluster_port = port_number(pod_spec(nats)["containers"][0], "cluster")
    routes = set(re.findall(r"nats://([\w.-]+:\d+)", config))
    wanted = {f"nats-{i}.{headless['metadata']['name']}:{cluster_port}" for i in range(replicas)}
    assert routes == wanted, f"{overlay}: {replicas} NATS servers, but cluster.conf routes to {sorted(routes)}"
    budgets = [b for b in of_kind(overlay, "PodDisruptionBudget") if selects(b["spec"]["selector"], pod_labels(nats))]
    assert budgets, f"{overlay}: no PodDisruptionBudget keeps a drain from taking two NATS servers at once"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_jetstream_stores_on_a_volume_of_each_server(overlay: str) -> None:
    nats = one(overlay, "StatefulSet", "nats")
    conf = without_comments(nats_files(overlay)["nats.conf"])
    store_dir = re.search(r"store_dir:\s*(\S+)", conf)
    assert store_dir, f"{overlay}: nats.conf sets no JetStream store_dir"
    claims = {c["metadata"]["name"]: c for c in nats["spec"]["volumeClaimTemplates"]}
    mounts = {m["mountPath"]: m["name"] for m in pod_spec(nats)["containers"][0]["volumeMounts"]}
    claim = claims.get(mounts.get(store_dir.group(1), ""))
    assert claim, f"{overlay}: JetStream's store_dir {store_dir.group(1)} is not on a volume claim of StatefulSet/nats"
    limit = re.search(r"max_file_store:\s*(\d+)Gi", conf)
    size = int(claim["spec"]["resources"]["requests"]["storage"].removesuffix("Gi"))
    assert limit and int(limit.group(1)) < size, f"{overlay}: JetStream's max_file_store must stay below {size}Gi"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_nats_server_accepts_the_rendered_configuration(overlay: str, tmp_path: Path) -> None:
    for name, text in nats_files(overlay).items():
        (tmp_path / name).write_text(text)
    nats = one(overlay, "StatefulSet", "nats")
    env = {
        **os.environ,
        **{k: "0123abcd" if v.startswith("<") else v for k, v in environment(overlay, nats_container(nats)).items()},
    }
    done = subprocess.run(
        [nats_server_binary(), "-t", "-c", str(tmp_path / "nats.conf")], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, f"{overlay}: nats-server -t refuses ConfigMap nats-config: {done.stderr}{done.stdout}"


def nats_container(nats: Obj) -> Obj:
    container: Obj = pod_spec(nats)["containers"][0]
    return container


def nats_users(overlay: str) -> dict[str, tuple[str, str]]:
    """Each NATS user and the (Secret, key) its password comes from in the NATS pods."""
    nats = one(overlay, "StatefulSet", "nats")
    refs = {
        v["name"]: (v["valueFrom"]["secretKeyRef"]["name"], v["valueFrom"]["secretKeyRef"]["key"])
        for v in nats_container(nats)["env"]
        if "secretKeyRef" in v.get("valueFrom", {})
    }
    users = re.findall(r"\{user:\s*([\w-]+),\s*password:\s*\$(\w+)", without_comments(nats_files(overlay)["nats.conf"]))
    missing = [variable for _, variable in users if variable not in refs]
    assert missing == [], f"{overlay}: nats.conf reads passwords from {missing}, which StatefulSet/nats does not set"
    return {user: refs[variable] for user, variable in users}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_workbench_process_connects_to_nats_as_a_user_with_its_password(overlay: str) -> None:
    users = nats_users(overlay)
    assert "results-reader" in users, f"{overlay}: nats.conf has no read-only user for outside subscribers"
    for workload, container, _ in workbench_processes(overlay):
        env = {v["name"]: v for v in container.get("env", [])}
        where = f"{overlay}: {name_of(workload)}"
        user = env.get("WB_NATS_USER", {}).get("value")
        assert user in users, f"{where} connects to NATS as {user!r}, not one of nats.conf's users {sorted(users)}"
        assert user != "results-reader", f"{where} uses the read-only user meant for outside subscribers"
        ref = env.get("WB_NATS_PASSWORD", {}).get("valueFrom", {}).get("secretKeyRef", {})
        assert (ref.get("name"), ref.get("key")) == users[user], (
            f"{where}: WB_NATS_PASSWORD comes from {ref}, but nats-server takes {user}'s from {users[user]}"
        )


# --- Secrets -------------------------------------------------------------------------------------


def secret_refs(overlay: str) -> set[tuple[str, str, bool, str]]:
    """(Secret, key, optional, who) of every reference to a Secret."""
    found = set()
    for workload in workloads(overlay):
        for container in containers(workload):
            for variable in container.get("env", []):
                ref = variable.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    found.add((ref["name"], ref["key"], bool(ref.get("optional")), name_of(workload)))
    for ingress in of_kind(overlay, "Ingress"):
        for tls in ingress["spec"].get("tls", []):
            found.add((tls["secretName"], "tls.crt", False, name_of(ingress)))
    return found


def test_prod_commits_no_secret_and_the_deploy_guide_says_how_to_make_each() -> None:
    assert [name_of(s) for s in of_kind("prod", "Secret")] == [], "prod renders Secrets: they would be committed"
    for name, key, _, who in sorted(secret_refs("prod")):
        assert f"`{name}`" in DEPLOY_DOC, f"{who} needs Secret {name}, which docs/deploy.md does not say how to create"
        assert key in DEPLOY_DOC, f"{who} needs key {key} of Secret {name}: docs/deploy.md does not name it"


def test_dev_renders_every_secret_it_needs() -> None:
    secrets = {s["metadata"]["name"]: s.get("data", {}) for s in of_kind("dev", "Secret")}
    for name, key, optional, who in sorted(secret_refs("dev")):
        if not optional:
            assert key in secrets.get(name, {}), f"dev: {who} needs key {key} of Secret {name}, which dev lacks"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secret_settings_come_from_secrets(overlay: str) -> None:
    for workload in workloads(overlay):
        for container in containers(workload):
            for variable in container.get("env", []):
                assert not (variable["name"] in SECRET_ENV and "value" in variable), (
                    f"{overlay}: {name_of(workload)} writes {variable['name']} into the manifest: use a secretKeyRef"
                )


# --- Who may talk to whom ------------------------------------------------------------------------


def allowed(overlay: str, target: Obj, port: str, caller: dict[str, str], namespace: dict[str, str]) -> bool:
    """Whether the overlay's NetworkPolicies let a pod with labels `caller`, in a namespace with labels
    `namespace` (the workbench's own when empty), reach `port` (a port name) of the workload `target`."""
    own_namespace = not namespace
    policies = [
        p
        for p in of_kind(overlay, "NetworkPolicy")
        if "Ingress" in p["spec"].get("policyTypes", ["Ingress"])
        and selects(p["spec"]["podSelector"], pod_labels(target))
    ]
    assert policies, f"{overlay}: no NetworkPolicy selects {name_of(target)}: anyone may reach it"
    for policy in policies:
        for rule in policy["spec"].get("ingress", []):
            numbers = {port, port_number(containers(target, init=False)[0], port)}
            if rule.get("ports") and not any(p["port"] in numbers for p in rule["ports"]):
                continue
            for peer in rule.get("from", [{}]):
                pods_ok = "podSelector" not in peer or selects(peer["podSelector"], caller)
                if "namespaceSelector" in peer:
                    namespace_ok = not own_namespace and selects(peer["namespaceSelector"], namespace)
                else:
                    namespace_ok = own_namespace
                if pods_ok and namespace_ok:
                    return True
    return False


def workload_behind(overlay: str, service: str) -> Obj:
    selector = one(overlay, "Service", service)["spec"]["selector"]
    found = [w for w in workloads(overlay) if selects({"matchLabels": selector}, pod_labels(w))]
    assert found, f"{overlay}: Service/{service} selects no pod"
    return found[0]


def calls(overlay: str) -> list[tuple[Obj, str, str]]:
    """(caller, Service, its port's name) for every connection a workbench process opens, read from its settings."""
    found = []
    for workload, container, settings_class in workbench_processes(overlay):
        settings = settings_class.from_env(environment(overlay, container))
        own = getattr(settings, "address", None)
        addresses = [
            getattr(settings, f)
            for f in ("datasets_addr", "inference_addr", "annotations_addr")
            if hasattr(settings, f)
        ]
        for address in [a for a in addresses if a != own]:
            found.append((workload, address.split(":")[0], "grpc"))
        found.append((workload, settings.nats_url.split("//")[1].split(":")[0], "client"))
        db_url = getattr(settings, "db_url", "")
        if db_url.startswith("<secret "):  # made in the cluster, as the dev overlay's (docs/deploy.md)
            name, key = db_url.removeprefix("<secret ").removesuffix(">").split("/")
            db_url = secret_value("dev", name, key) or ""
        if "@" in db_url:
            found.append((workload, db_url.split("@")[1].split(":")[0], "postgres"))
    return found


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_let_each_process_reach_what_it_calls(overlay: str) -> None:
    for caller, service, port in calls(overlay):
        target = workload_behind(overlay, service)
        assert allowed(overlay, target, port, pod_labels(caller), {}), (
            f"{overlay}: {name_of(caller)} calls Service/{service} ({port}), but no NetworkPolicy lets it in"
        )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_keep_everyone_else_out(overlay: str) -> None:
    default_deny = [
        p for p in of_kind(overlay, "NetworkPolicy") if p["spec"]["podSelector"] == {} and not p["spec"].get("ingress")
    ]
    assert default_deny, f"{overlay}: no default-deny NetworkPolicy: pods no policy names are open to all"
    callers = {(service, name_of(caller)) for caller, service, _ in calls(overlay)}
    stranger = {"app": "stranger"}
    elsewhere = {"kubernetes.io/metadata.name": "elsewhere"}
    for workload in workloads(overlay):
        for port in [p["name"] for c in containers(workload, init=False) for p in c.get("ports", [])]:
            assert not allowed(overlay, workload, port, stranger, {}), (
                f"{overlay}: any pod of the namespace may reach {name_of(workload)} ({port})"
            )
            assert not allowed(overlay, workload, port, stranger, elsewhere), (
                f"{overlay}: any pod of any namespace may reach {name_of(workload)} ({port})"
            )
        for other in workloads(overlay):
            for service in of_kind(overlay, "Service"):
                if (
                    selects({"matchLabels": service["spec"]["selector"]}, pod_labels(workload))
                    and other is not workload
                ):
                    called = (service["metadata"]["name"], name_of(other)) in callers
                    for port in [p["name"] for p in service["spec"]["ports"]]:
                        if not called and port in ("grpc", "postgres"):
                            assert not allowed(overlay, workload, port, pod_labels(other), {}), (
                                f"{overlay}: {name_of(other)} never calls Service/{service['metadata']['name']}, "
                                f"yet a NetworkPolicy lets it in ({port})"
                            )
    gateway = one(overlay, "Deployment", "gateway")
    ingress_controller = {"kubernetes.io/metadata.name": "ingress-nginx"}
    assert allowed(overlay, gateway, "http", {}, ingress_controller), f"{overlay}: the ingress cannot reach the gateway"
    nats = one(overlay, "StatefulSet", "nats")
    readers = {"workbench-results-reader": "true"}
    assert allowed(overlay, nats, "client", {}, readers), f"{overlay}: outside readers of results cannot reach NATS"
    assert not allowed(overlay, nats, "cluster", {}, readers), f"{overlay}: outside readers reach NATS's routes"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_nothing_is_exposed_beyond_the_cluster_network(overlay: str) -> None:
    for service in of_kind(overlay, "Service"):
        kind = service["spec"].get("type", "ClusterIP")
        assert kind == "ClusterIP", f"{overlay}: {name_of(service)} is a {kind}: only the Ingress faces outside"
    for workload in workloads(overlay):
        spec = pod_spec(workload)
        assert not spec.get("hostNetwork"), f"{overlay}: {name_of(workload)} uses the node's network"
        for container in containers(workload):
            assert not any("hostPort" in p for p in container.get("ports", [])), f"{overlay}: {name_of(workload)}"


# --- Pods ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_meets_the_restricted_pod_security_standard(overlay: str) -> None:
    [namespace] = of_kind(overlay, "Namespace")
    assert namespace["metadata"]["labels"].get("pod-security.kubernetes.io/enforce") == "restricted", (
        f"{overlay}: {name_of(namespace)} does not enforce the restricted Pod Security Standard"
    )
    for workload in workloads(overlay):
        spec, where = pod_spec(workload), f"{overlay}: {name_of(workload)}"
        assert spec["securityContext"].get("runAsNonRoot") is True, f"{where} may run as root"
        assert spec["securityContext"].get("seccompProfile") == {"type": "RuntimeDefault"}, f"{where}: no seccomp"
        assert spec.get("automountServiceAccountToken") is False, f"{where} mounts an API token it does not use"
        assert not any("hostPath" in v for v in spec.get("volumes", [])), f"{where} mounts a node's folder"
        for container in containers(workload):
            context = container.get("securityContext", {})
            assert context.get("allowPrivilegeEscalation") is False, f"{where}: {container['name']} may escalate"
            assert context.get("readOnlyRootFilesystem") is True, f"{where}: {container['name']} may write its image"
            assert context.get("capabilities", {}).get("drop") == ["ALL"], f"{where}: {container['name']} keeps caps"
            assert "memory" in container.get("resources", {}).get("limits", {}), f"{where}: {container['name']}"


def test_prod_runs_one_gpu_worker_per_model_with_a_model_cache() -> None:
    claims = {c["metadata"]["name"] for c in of_kind("prod", "PersistentVolumeClaim")}
    served: dict[str, str] = {}
    for workload, container, _ in workbench_processes("prod"):
        env = environment("prod", container)
        if "WB_WORKER_NAME" not in env:  # not a worker
            continue
        where = f"prod: {name_of(workload)}"
        models = env.get("WB_WORKER_MODELS", "")
        assert models and "," not in models, f"{where} serves {models or 'every model'}: one model per worker"
        served[models] = where
        assert str(container["resources"]["limits"].get("nvidia.com/gpu")) == "1", f"{where} asks for no GPU"
        volumes = {v["name"]: v for v in pod_spec(workload)["volumes"]}
        mount = [m for m in container["volumeMounts"] if env.get("HF_HOME", "").startswith(m["mountPath"])]
        assert mount, f"{where}: HF_HOME ({env.get('HF_HOME')}) is on no volume"
        claim = volumes[mount[0]["name"]].get("persistentVolumeClaim", {}).get("claimName")
        assert claim in claims, f"{where}: the model cache is not a claim the overlay creates ({claim})"
        token = [v for v in container["env"] if v["name"] == "HF_TOKEN"]
        assert token and "secretKeyRef" in token[0]["valueFrom"], f"{where}: no Hugging Face token from a Secret"
    wanted = {m["id"] for m in GPU_MODELS if m.get("backend", "vllm") == "vllm"}
    assert set(served) == wanted, (
        f"prod: workers serve {sorted(served)}; models.gpu.example.toml names {sorted(wanted)}"
    )


def test_the_ingress_lets_the_largest_upload_through() -> None:
    [ingress] = of_kind("prod", "Ingress")
    body = ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"]
    allowed_bytes = int(body.removesuffix("m")) * 2**20
    largest = GatewaySettings.model_fields["max_upload_bytes"].default
    assert allowed_bytes >= largest, f"prod: Ingress/workbench cuts bodies at {body}, uploads go to {largest} bytes"
    [path] = [p for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]]
    backend = path["backend"]["service"]
    gateway = workload_behind("prod", backend["name"])
    service = one("prod", "Service", backend["name"])
    assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}, f"prod: {name_of(gateway)}"


def test_every_kustomization_names_files_that_exist() -> None:
    import yaml

    for kustomization in DEPLOY.rglob("kustomization.yaml"):
        spec = yaml.safe_load(kustomization.read_text())
        names = spec.get("resources", []) + spec.get("components", [])
        names += [p["path"] for p in spec.get("patches", []) if "path" in p]
        for generator in spec.get("configMapGenerator", []) + spec.get("secretGenerator", []):
            names += [f.split("=")[-1] for f in generator.get("files", [])]
        for name in names:
            assert (kustomization.parent / name).exists(), f"{kustomization.relative_to(REPO)}: {name} is missing"
