"""python -m inference_service [serve | worker | rebuild]

serve (the default) runs the inference API; worker runs models from the work queue; rebuild replays
the runs read model from the event log. Settings come from the environment (see config.py).
"""

import argparse
import asyncio
import logging
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m inference_service", description=__doc__.split("\n\n")[1])
    parser.add_argument("command", nargs="?", default="serve", choices=["serve", "worker", "rebuild"])
    command = parser.parse_args(argv).command
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Imported here: vLLM spawns processes that import this module again, and they need none of it.
    from inference_service import bootstrap
    from inference_service.config import Settings, WorkerSettings
    from inference_service.domain.errors import InvalidInput

    try:
        if command == "worker":
            asyncio.run(bootstrap.work(WorkerSettings.from_env()))
        elif command == "rebuild":
            position = asyncio.run(bootstrap.rebuild_read_model(Settings.from_env()))
            print(f"runs read model rebuilt up to sequence {position}")
        else:
            return asyncio.run(bootstrap.serve(Settings.from_env()))
    except (InvalidInput, ValueError) as error:
        print(f"inference_service {command}: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
