"""`python -m annotations_service [serve | rebuild | parked [--retry]]` (see servicehost.cli)."""

import sys

from annotations_service.bootstrap import projections, start
from annotations_service.settings import AnnotationsSettings
from servicehost.cli import service_main


def main() -> int:
    return service_main("annotations", AnnotationsSettings, start, projections)


if __name__ == "__main__":
    sys.exit(main())
