"""Every environment variable a process reads is in docs/operations.md, so a user can find it."""

import re
from pathlib import Path

import pytest

from annotations_service.settings import AnnotationsSettings
from datasets_service.settings import DatasetsSettings
from devstack.settings import DevstackSettings
from gateway.settings import GatewaySettings
from inference_service.settings import InferenceSettings, WorkerSettings
from servicehost.settings import Settings

DOC = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
DOCUMENTED = set(re.findall(r"`(WB_[A-Z0-9_]+)`", DOC))


@pytest.mark.parametrize(
    "settings",
    [DatasetsSettings, InferenceSettings, WorkerSettings, AnnotationsSettings, GatewaySettings, DevstackSettings],
)
def test_every_variable_is_documented(settings: type[Settings]) -> None:
    variables = [name for name, _, _ in settings.variables()]

    assert variables, "a settings class with no variables"
    assert sorted(set(variables) - DOCUMENTED) == []
