"""`python -m datasets_service [serve | rebuild | parked [--retry]]` (see servicehost.cli)."""

import sys

from datasets_service.bootstrap import projections, start
from datasets_service.settings import DatasetsSettings
from servicehost.cli import service_main


def main() -> int:
    return service_main("datasets", DatasetsSettings, start, projections)


if __name__ == "__main__":
    sys.exit(main())
