"""`python -m inference_service [serve | worker | rebuild | parked [--retry]]` (see servicehost.cli).

serve (the default) runs the inference API; worker runs models from the work queue (its settings
are WorkerSettings). Nothing is imported at module level: vLLM spawns processes that import this
module again, and they need none of it.
"""

import logging
import os
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from inference_service.bootstrap import projections, start, work
    from inference_service.settings import InferenceSettings, WorkerSettings
    from servicehost.cli import Command, service_main

    async def work_then_exit(settings: WorkerSettings) -> int:
        code = await work(settings)
        # Every shard is settled and every connection closed by now; what is left is the
        # interpreter's last garbage collection over torch's and vLLM's objects, which takes seconds
        # a supervisor (make run, Kubernetes) would otherwise wait for.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)

    worker = Command("run models from the work queue", WorkerSettings, work_then_exit)
    return service_main("inference", InferenceSettings, start, projections, argv, more={"worker": worker})


if __name__ == "__main__":
    sys.exit(main())
