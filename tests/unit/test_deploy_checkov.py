"""checkov (a static security scanner for Kubernetes manifests) passes on both rendered overlays,
but for the checks skipped in deploy/checkov.yaml or in an overlay, each with its reason there."""

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.unit.deploy_render import DEPLOY, OVERLAYS, REPO, rendered

# checkov pins libraries of its own: it lives in a venv of its own (Makefile: make checkov).
CHECKOV = REPO / ".venv-checkov" / "bin" / "checkov"
CONFIG = DEPLOY / "checkov.yaml"


def test_checkov_finds_nothing_in_the_rendered_manifests(tmp_path: Path) -> None:
    if not CHECKOV.exists():
        pytest.fail(f"{CHECKOV.relative_to(REPO)} is missing: run `make checkov` (make test does)")
    for overlay in OVERLAYS:
        (tmp_path / f"{overlay}.yaml").write_text(yaml.safe_dump_all(rendered(overlay)))
    done = subprocess.run(
        [str(CHECKOV), "--directory", str(tmp_path), "--config-file", str(CONFIG), "--output", "json", "--compact"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.stdout.strip(), f"checkov printed nothing: {done.stderr}"
    report = json.loads(done.stdout)
    failed = [
        f"{check['resource']}: {check['check_id']} {check['check_name']}"
        for part in (report if isinstance(report, list) else [report])
        for check in part["results"]["failed_checks"]
    ]
    assert failed == [], "checkov:\n" + "\n".join(failed)


def test_every_skipped_check_says_why() -> None:
    lines = CONFIG.read_text().splitlines()
    for number, line in enumerate(lines):
        if re.match(r"\s*- CKV", line):
            assert lines[number - 1].strip().startswith("#"), (
                f"deploy/checkov.yaml skips {line.strip()[2:]} without a reason"
            )
    for overlay in OVERLAYS:
        for obj in rendered(overlay):
            for key, value in obj["metadata"].get("annotations", {}).items():
                if key.startswith("checkov.io/skip"):
                    check, _, reason = value.partition("=")
                    assert reason.strip(), (
                        f"{overlay}: {obj['kind']}/{obj['metadata']['name']} skips {check} without a reason"
                    )
