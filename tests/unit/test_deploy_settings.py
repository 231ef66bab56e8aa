"""Each workbench process in the manifests gets the settings it needs in a cluster, and listens
where its Service, its probes and its callers expect it: read from the code's own settings classes."""

import re
from pathlib import Path

import pytest

from servicehost.settings import CommonSettings, SettingsError
from tests.unit.deploy_render import (
    OVERLAYS,
    REPO,
    Obj,
    environment,
    name_of,
    one,
    port_number,
    selects,
    workbench_processes,
    workloads,
)

# Settings whose default is wrong in a cluster although it is no loopback address or SQLite file.
CLUSTER_SETTINGS = {
    "WB_NATS_USER": "nats-server has users there",
    "WB_NATS_PASSWORD": "nats-server has users there",
    "WB_MODELS_FILE": "config/models.toml names the demo models, built by `make run` only",
    "WB_STREAM_REPLICAS": "must match the NATS servers",
    "WB_API_TOKEN": "required",
    "WB_SESSION_SECRET": "every gateway replica must share it, apart from the API token",
    "WB_DATASETS_SPOOL_DIR": "uploads need a volume of their own (the root filesystem is read-only)",
}
# ... and in prod, where the page is served over HTTPS and each worker has a GPU of its own.
PROD_SETTINGS = {
    "WB_SECURE_COOKIES": "the page is served over HTTPS",
    "WB_WORKER_MODELS": "one model per GPU",
    "WB_VLLM_GPU_MEMORY_UTILIZATION": "the default (0.25) leaves most of the GPU unused",
    "WB_VLLM_ENFORCE_EAGER": "the default (true) is for CPUs",
}


def needed(settings: type[CommonSettings], overlay: str) -> dict[str, str]:
    """The variables of this settings class that the manifests must set, and why."""
    wanted = {**CLUSTER_SETTINGS, **(PROD_SETTINGS if overlay == "prod" else {})}
    found = {}
    for variable, default, _ in settings.variables():
        if re.search(r"127\.0\.0\.1|localhost|^sqlite:", str(default)):
            found[variable] = f"its default {default} only works on one machine"
        elif variable in wanted:
            found[variable] = wanted[variable]
    return found


def cases() -> list[tuple[str, Obj, Obj, type[CommonSettings]]]:
    return [(overlay, *process) for overlay in OVERLAYS for process in workbench_processes(overlay)]


def ids() -> list[str]:
    return [f"{overlay}-{name_of(w)}" for overlay, w, _, _ in cases()]


@pytest.mark.parametrize(("overlay", "workload", "container", "settings_class"), cases(), ids=ids())
def test_every_setting_without_a_safe_default_is_set(
    overlay: str, workload: Obj, container: Obj, settings_class: type[CommonSettings]
) -> None:
    env = environment(overlay, container)
    where = f"{overlay}: {name_of(workload)} ({settings_class.__name__})"
    missing = [
        f"{variable} ({why})" for variable, why in needed(settings_class, overlay).items() if variable not in env
    ]
    assert missing == [], f"{where} does not set " + "; ".join(missing)
    try:
        settings_class.from_env(env)
    except SettingsError as error:
        pytest.fail(f"{where} would not start: {error}")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_settings_agree_with_the_cluster(overlay: str) -> None:
    nats_replicas = one(overlay, "StatefulSet", "nats")["spec"]["replicas"]
    for workload, container, settings_class in workbench_processes(overlay):
        settings = settings_class.from_env(environment(overlay, container))
        where = f"{overlay}: {name_of(workload)}"
        replicas = getattr(settings, "stream_replicas", nats_replicas)
        assert replicas == nats_replicas, f"{where}: WB_STREAM_REPLICAS={replicas} with {nats_replicas} NATS servers"
        if overlay == "prod" and hasattr(settings, "secure_cookies"):
            assert settings.secure_cookies, f"{where}: WB_SECURE_COOKIES must be true behind HTTPS"
        models_file = getattr(settings, "models_file", None)
        if models_file is not None:
            in_repo = REPO / Path(models_file).relative_to("/app")
            assert in_repo.exists(), (
                f"{where}: WB_MODELS_FILE={models_file}, but {in_repo.relative_to(REPO)} is missing"
            )
            if overlay == "prod":
                assert in_repo.name == "models.gpu.example.toml", f"{where} runs {in_repo.name}, not the GPU models"


def listening_port(address: str, where: str) -> int:
    host, _, port = address.rpartition(":")
    assert host == "0.0.0.0", f"{where} listens on {address}: only its own pod could reach it"
    return int(port)


def service_port(overlay: str, address: str, where: str) -> tuple[Obj, Obj]:
    """The Service and its port that a peer's address names, and the workload behind it."""
    host, _, port = address.rpartition(":")
    service = one(overlay, "Service", host)
    ports = [p for p in service["spec"]["ports"] if p["port"] == int(port)]
    assert ports, f"{where} calls {address}, but Service/{host} has no port {port}"
    backends = [w for w in workloads(overlay) if selects({"matchLabels": service["spec"]["selector"]}, w_labels(w))]
    assert backends, f"{where} calls {address}, but Service/{host} selects no pod"
    return ports[0], backends[0]


def w_labels(workload: Obj) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"]["labels"]
    return labels


def target_port(container: Obj, port: Obj) -> int | None:
    target = port.get("targetPort", port["port"])
    return port_number(container, target) if isinstance(target, str) else target


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_port_matches_what_the_process_listens_on(overlay: str) -> None:
    for workload, container, settings_class in workbench_processes(overlay):
        settings = settings_class.from_env(environment(overlay, container))
        where = f"{overlay}: {name_of(workload)}"
        listens: dict[str, int] = {}
        if hasattr(settings, "address"):
            listens["grpc"] = listening_port(settings.address, where)
            for probe in ("readinessProbe", "livenessProbe"):
                probed = container[probe].get("grpc", {}).get("port")
                assert probed == listens["grpc"], f"{where}: the {probe} asks port {probed}, it listens on {listens}"
        if hasattr(settings, "host"):
            listens["http"] = listening_port(f"{settings.host}:{getattr(settings, 'port', 0)}", where)
        metrics_addr = getattr(settings, "metrics_addr", "off")
        if metrics_addr != "off":
            listens["metrics"] = listening_port(metrics_addr, where)
        for name, number in listens.items():
            declared = port_number(container, name)
            assert declared == number, f"{where}: containerPort {name} is {declared}, the process listens on {number}"
        peers = [
            getattr(settings, f)
            for f in ("datasets_addr", "inference_addr", "annotations_addr")
            if hasattr(settings, f)
        ]
        for address in [a for a in peers if a != getattr(settings, "address", None)]:
            port, backend = service_port(overlay, address, where)
            [serving] = [(c, cls) for w, c, cls in workbench_processes(overlay) if w is backend]
            served = serving[1].from_env(environment(overlay, serving[0])).address  # type: ignore[attr-defined]
            assert target_port(serving[0], port) == int(served.rpartition(":")[2]), (
                f"{where} calls {address}: Service port {port['port']} leads to {target_port(serving[0], port)}, "
                f"but {name_of(backend)} listens on {served}"
            )
        port, backend = service_port(overlay, settings.nats_url.split("//")[1], where)
        nats = backend["spec"]["template"]["spec"]["containers"][0]
        assert target_port(nats, port) == 4222, f"{where}: WB_NATS_URL={settings.nats_url} reaches no NATS client port"
