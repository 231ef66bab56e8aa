from pathlib import Path

import pytest

from tests.unit.datasets.checking import Uploads


@pytest.fixture
def uploads(tmp_path: Path) -> Uploads:
    """Files written to the test's folder and checked as an upload is."""
    return Uploads(tmp_path)
