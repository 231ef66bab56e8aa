"""The Tiltfile, evaluated by a Starlark interpreter with Tilt's functions recorded instead of run
(there is no Tilt, Docker or cluster here): every image, Dockerfile, path and port it names exists
and matches the dev overlay it applies."""

import re
from dataclasses import dataclass, field
from typing import Any

import pytest
import starlark

from tests.unit.deploy_render import DEPLOY, REPO, Obj, containers, name_of, pod_spec, rendered, workloads

TILTFILE = REPO / "Tiltfile"
TILT_FUNCTIONS = (
    "docker_build",
    "k8s_yaml",
    "k8s_resource",
    "kustomize",
    "sync",
    "run",
    "fall_back_on",
    "restart_container",
    "local_resource",
    "local",
    "allow_k8s_contexts",
)


@dataclass
class Tilt:
    """What the Tiltfile asked Tilt to do: each call as (function, args, kwargs)."""

    calls: list[tuple[str, list[Any], dict[str, Any]]] = field(default_factory=list)

    def called(self, function: str) -> list[tuple[list[Any], dict[str, Any]]]:
        return [(args, kwargs) for name, args, kwargs in self.calls if name == function]


@pytest.fixture(scope="module")
def tilt() -> Tilt:
    recorded = Tilt()
    module = starlark.Module()
    for function in TILT_FUNCTIONS:

        def record(*args: Any, _function: str = function, **kwargs: Any) -> dict[str, Any]:
            recorded.calls.append((_function, list(args), kwargs))
            return {"tilt": _function, "args": list(args), "kwargs": kwargs}

        module.add_callable(function, record)
    module.add_callable("_getenv", lambda name, default=None: default)
    extensions = starlark.Globals.extended_by([starlark.LibraryExtension.StructType])
    dialect = starlark.Dialect.extended()
    starlark.eval(module, starlark.parse("prelude", "os = struct(getenv = _getenv)", dialect), extensions)
    try:
        starlark.eval(module, starlark.parse("Tiltfile", TILTFILE.read_text(), dialect), extensions)
    except starlark.StarlarkError as error:
        pytest.fail(f"the Tiltfile does not evaluate: {error}")
    return recorded


def dev_workloads_of(image: str) -> list[tuple[Obj, Obj]]:
    return [(w, c) for w in workloads("dev") for c in containers(w) if c["image"] == image]


def copied_into_image(dockerfile: str) -> dict[str, str]:
    """Where each file or folder a Dockerfile copies lands (`COPY a b dest/` copies a and b into dest)."""
    landed = {}
    for line in (REPO / dockerfile).read_text().splitlines():
        if line.startswith("COPY "):
            *sources, destination = line.split()[1:]
            for source in sources:
                inside = destination + source.rsplit("/", 1)[-1] if destination.endswith("/") else destination
                landed["/app/" + inside.removeprefix("/app/")] = source
    return landed


def test_every_image_it_builds_is_run_by_the_dev_overlay_and_the_other_way_round(tilt: Tilt) -> None:
    built = {args[0] for args, _ in tilt.called("docker_build")}
    ours = {
        c["image"] for w in workloads("dev") for c in containers(w) if "/" not in c["image"] and ":" not in c["image"]
    }
    assert built == ours, f"the Tiltfile builds {sorted(built)}; deploy/overlays/dev runs {sorted(ours)}"


def test_every_dockerfile_context_and_build_argument_exists(tilt: Tilt) -> None:
    for args, kwargs in tilt.called("docker_build"):
        image, context = args[0], args[1]
        dockerfile = kwargs.get("dockerfile", f"{context}/Dockerfile")
        assert (REPO / context).is_dir(), f"docker_build({image!r}): context {context} is missing"
        assert (REPO / dockerfile).is_file(), f"docker_build({image!r}): {dockerfile} is missing"
        declared = set(re.findall(r"^ARG (\w+)", (REPO / dockerfile).read_text(), re.MULTILINE))
        unknown = set(kwargs.get("build_args", {})) - declared
        assert unknown == set(), (
            f"docker_build({image!r}) passes {sorted(unknown)}, which {dockerfile} does not declare"
        )


def test_live_update_writes_into_a_writable_path_and_restarts_the_process(tilt: Tilt) -> None:
    for args, kwargs in tilt.called("docker_build"):
        image, dockerfile = args[0], kwargs["dockerfile"]
        steps = kwargs.get("live_update", [])
        syncs = [s["args"] for s in steps if s["tilt"] == "sync"]
        assert syncs, f"docker_build({image!r}) has no live update"
        runs = [s for s in steps if s["tilt"] == "run"]
        assert runs, f"docker_build({image!r}): live update syncs files but restarts nothing (no run step)"
        for step in [s for s in steps if s["tilt"] == "fall_back_on"]:
            for path in step["args"][0]:
                assert (REPO / path).exists(), f"docker_build({image!r}): fall_back_on names {path}, which is missing"
        landed = copied_into_image(dockerfile)
        for local, remote in syncs:
            assert (REPO / local).exists(), f"docker_build({image!r}): sync from {local}, which is missing"
            assert landed.get(remote) == local, (
                f"docker_build({image!r}): {local} is synced to {remote}, not where {dockerfile} puts it"
            )
        for workload, container in dev_workloads_of(image):
            if container in pod_spec(workload).get("initContainers", []):
                continue
            where = f"dev: {name_of(workload)}"
            writable = {v["name"] for v in pod_spec(workload)["volumes"] if "emptyDir" in v}
            mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
            for _, remote in syncs:
                under = [path for path in mounts if remote.startswith(path.rstrip("/") + "/")]
                assert under and mounts[max(under, key=len)] in writable, (
                    f"{where}: Tilt syncs into {remote}, not writable"
                )
            assert container["securityContext"].get("readOnlyRootFilesystem") is True, f"{where}: root made writable"
            for step in runs:
                restart = step["args"][0].split()[0]
                assert restart in landed, f"docker_build({image!r}) runs {restart}, which {dockerfile} does not copy"
            restarter = container["command"][0]
            assert restarter in landed, f"{where}: starts with {restarter}, which nothing restarts on a live update"
            assert landed[restarter] == "deploy/docker/dev-run", f"{where} is not run under deploy/docker/dev-run"


def test_it_applies_the_dev_overlay(tilt: Tilt) -> None:
    applied = [args[0] for args, _ in tilt.called("k8s_yaml")]
    assert [a["args"][0] for a in applied if a["tilt"] == "kustomize"] == ["deploy/overlays/dev"]
    assert (DEPLOY / "overlays" / "dev" / "kustomization.yaml").exists()


def test_every_resource_and_port_forward_it_names_exists(tilt: Tilt) -> None:
    by_name = {w["metadata"]["name"]: w for w in workloads("dev")}
    named = set()
    for args, kwargs in tilt.called("k8s_resource"):
        name = args[0]
        named.add(name)
        assert name in by_name, f"k8s_resource({name!r}): deploy/overlays/dev has no workload of that name"
        for forward in kwargs.get("port_forwards", []):
            remote = int(str(forward).split(":")[-1])
            ports = {p["containerPort"] for c in containers(by_name[name]) for p in c.get("ports", [])}
            assert remote in ports, f"k8s_resource({name!r}) forwards {forward}, but the pod listens on {sorted(ports)}"
    assert named == set(by_name), f"workloads Tilt does not name: {sorted(set(by_name) - named)}"
    assert rendered("dev")
