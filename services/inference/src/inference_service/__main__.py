"""`python -m inference_service [serve | worker | rebuild | parked [--retry]]` (see servicehost.cli).

serve (the default) runs the inference API; worker runs models from the work queue (its settings
are WorkerSettings). Nothing is imported at module level: vLLM spawns processes that import this
module again, and they need none of it.
"""

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from inference_service.bootstrap import projections, start, work
    from inference_service.settings import InferenceSettings, WorkerSettings
    from servicehost.cli import Command, service_main

    worker = Command("run models from the work queue", WorkerSettings, work)
    return service_main("inference", InferenceSettings, start, projections, argv, more={"worker": worker})


if __name__ == "__main__":
    sys.exit(main())
