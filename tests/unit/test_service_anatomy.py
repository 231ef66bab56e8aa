"""One shape for every service (docs/architecture.md, "Anatomy of a service"), checked on the source.

A newcomer who has read one service finds the same file for the same job in the other two; layers
do not leak (the domain imports no infrastructure, the gRPC edge sees no table rows); settings and
database engines come from the service host only.
"""

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SERVICES = {
    "datasets": REPO / "services/datasets/src/datasets_service",
    "inference": REPO / "services/inference/src/inference_service",
    "annotations": REPO / "services/annotations/src/annotations_service",
}
EVERY_SERVICE_HAS = [
    "__main__.py",
    "settings.py",
    "bootstrap.py",
    "application.py",
    "domain/state.py",
    "domain/commands.py",
    "domain/errors.py",
    "adapters/read_model.py",
    "grpc/servicer.py",
    "grpc/convert.py",
]
# What a domain may import besides the standard library and itself: the contracts, and the pure
# parts of the shared libraries (events, subject tokens, error kinds, the text rules).
DOMAIN_MAY_IMPORT = (
    "google.protobuf",
    "workbench.",
    "eventlog.events",
    "eventlog.subjects",
    "servicehost.errors",
    "servicehost.text",
)


def modules(root: Path) -> Iterator[tuple[Path, ast.Module]]:
    for path in sorted(root.rglob("*.py")):
        yield path, ast.parse(path.read_text(), filename=str(path))


def imported(tree: ast.Module) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_has_the_same_files_for_the_same_jobs(service: str) -> None:
    root = SERVICES[service]
    assert [name for name in EVERY_SERVICE_HAS if not (root / name).is_file()] == []
    assert not (root / "config.py").exists() and not (root / "projector.py").exists()


@pytest.mark.parametrize("service", SERVICES)
def test_the_domain_imports_no_infrastructure(service: str) -> None:
    own = f"{service}_service.domain"
    foreign = [
        f"{path.name}: {name}"
        for path, tree in modules(SERVICES[service] / "domain")
        for name in imported(tree)
        if not (
            name.split(".")[0] in sys.stdlib_module_names
            or name == own
            or name.startswith(f"{own}.")
            or name.startswith(DOMAIN_MAY_IMPORT)
        )
    ]
    assert foreign == []


@pytest.mark.parametrize("service", SERVICES)
def test_the_grpc_edge_sees_no_tables(service: str) -> None:
    adapters = f"{service}_service.adapters"
    leaks = [
        f"{path.name}: {name}"
        for path, tree in modules(SERVICES[service] / "grpc")
        for name in imported(tree)
        if name.startswith(adapters) or name.startswith(("sqlmodel", "sqlalchemy"))
    ]
    assert leaks == []


def test_no_service_or_gateway_module_reads_the_environment_or_opens_a_database_itself() -> None:
    roots = [*SERVICES.values(), REPO / "gateway/src/gateway"]
    offences = []
    for root in roots:
        for path, tree in modules(root):
            for node in ast.walk(tree):
                if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv"):
                    offences.append(f"{path.relative_to(REPO)}:{node.lineno} reads os.{node.attr}")
                if isinstance(node, ast.Name | ast.Attribute) and getattr(node, "id", getattr(node, "attr", "")) in (
                    "create_engine",
                    "create_async_engine",
                ):
                    offences.append(f"{path.relative_to(REPO)}:{node.lineno} creates a database engine")
    assert offences == []
