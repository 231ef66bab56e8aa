"""The images (deploy/docker) hold what the manifests run: every file they copy exists, every part of
the repository a part they install depends on is installed beside it (pip would look for it on
PyPI otherwise), and every module a container runs is in its image."""

import re
import tomllib
from pathlib import Path

import pytest

from tests.unit.deploy_render import OVERLAYS, REPO, containers, name_of, workloads

DOCKERFILES = {"workbench": "deploy/docker/Dockerfile", "workbench-worker": "deploy/docker/Dockerfile.worker"}


def instructions(dockerfile: str) -> list[str]:
    """The Dockerfile's instructions, continuation lines joined."""
    text = (REPO / dockerfile).read_text()
    joined = re.sub(r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")))
    return [line.strip() for line in joined.splitlines() if line.strip()]


def installed_parts(dockerfile: str) -> list[Path]:
    parts = []
    for line in instructions(dockerfile):
        for spec in re.findall(r"-e\s+\"?([\w/.-]+)", line):
            parts.append(REPO / spec)
    return parts


def project(part: Path) -> dict[str, object]:
    data: dict[str, object] = tomllib.loads((part / "pyproject.toml").read_text())["project"]
    return data


def local_parts() -> dict[str, Path]:
    """Every part of the repository by its project name."""
    return {str(project(p.parent)["name"]): p.parent for p in REPO.glob("**/pyproject.toml") if _is_part(p)}


def _is_part(pyproject: Path) -> bool:
    return (
        ".venv" not in pyproject.parts
        and pyproject.parent != REPO
        and "project" in tomllib.loads(pyproject.read_text())
    )


@pytest.mark.parametrize("dockerfile", DOCKERFILES.values())
def test_every_file_it_copies_exists(dockerfile: str) -> None:
    for line in instructions(dockerfile):
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (REPO / source).exists(), f"{dockerfile}: COPY {source}: it is missing"


@pytest.mark.parametrize("dockerfile", DOCKERFILES.values())
def test_every_part_it_installs_has_its_local_dependencies_beside_it(dockerfile: str) -> None:
    ours = local_parts()
    installed = installed_parts(dockerfile)
    names = {str(project(part)["name"]) for part in installed}
    for part in installed:
        for dependency in project(part).get("dependencies", []):  # type: ignore[attr-defined]
            name = re.split(r"[\s<>=\[;]", str(dependency))[0]
            if name in ours:
                assert name in names, (
                    f"{dockerfile}: installs {part.relative_to(REPO)}, which needs {name}, not installed"
                )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_module_a_container_runs_is_in_its_image(overlay: str) -> None:
    for workload in workloads(overlay):
        for container in containers(workload):
            image = container["image"].split("/")[-1].split(":")[0]
            command = [c for c in container.get("command", []) if not c.startswith("/app/dev/")]
            if image not in DOCKERFILES or command[:2] != ["python", "-m"]:
                continue
            module = command[2].split(".")[0]
            packages = [part / "src" / module for part in installed_parts(DOCKERFILES[image])]
            assert any(p.is_dir() for p in packages), (
                f"{overlay}: {name_of(workload)} runs `python -m {command[2]}`, not installed in {DOCKERFILES[image]}"
            )
