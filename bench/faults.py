"""The fault suite at N random points of each kind, on one stack of its own.

    python bench/faults.py [N] [--kinds worker,gateway,...]

Each kind (tests/faults/scenario.py): kill -9 of the inference worker, of the datasets, inference or
annotations service, of the gateway or of nats-server, then a restart; and a SIGSTOP of nats-server
during StartRun for longer than the append timeout. Each point is a two-model run of 600 records
over the two tiny demo models (as `make run` builds them) with marks made through the gateway and a
resuming WebSocket page watching. After each: results lost or duplicated, acknowledged marks lost,
read models whose rebuild differs from the live one. A run with any problem prints its timeline.

Points are drawn from WB_FAULT_SEED (random when unset, printed first); round r of kind K uses the
seed "<WB_FAULT_SEED>-<r>", so `WB_FAULT_SEED=<that> pytest tests/faults -k K` replays one.
The last lines are the totals; fault_runs counts rounds, each one point of every kind. The exit
status is 1 when any run had a problem.
"""

import argparse
import asyncio
import logging
import os
import secrets
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The scenario is the test suite's own (tests/faults/scenario.py); this folder holds eventlog.py,
# named like the library: keep it from shadowing the package.
sys.path = [str(REPO), *(p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent)]

from devstack import Stack, StackPorts  # noqa: E402
from devstack.__main__ import DEMO_MODELS_FILE, build_demo_models  # noqa: E402
from tests.faults.outcome import FaultOutcome, summary  # noqa: E402
from tests.faults.scenario import FAULT_STACK_ENV, KINDS, run_fault  # noqa: E402


async def run_rounds(stack: Stack, rounds: int, kinds: list[str], seed: str) -> list[FaultOutcome]:
    outcomes = []
    for round_number in range(rounds):
        for kind in kinds:
            outcome = await run_fault(stack, kind, f"{seed}-{round_number}")
            print(outcome.report(), flush=True)
            outcomes.append(outcome)
    return outcomes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rounds", nargs="?", type=int, default=1, help="random points of each kind (default 1)")
    parser.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated, of {', '.join(KINDS)}")
    args = parser.parse_args()
    kinds = [kind for kind in args.kinds.split(",") if kind]
    if unknown := set(kinds) - set(KINDS):
        parser.error(f"unknown kinds {sorted(unknown)}; known: {', '.join(KINDS)}")
    seed = os.environ.get("WB_FAULT_SEED") or secrets.token_hex(4)
    print(f"WB_FAULT_SEED={seed}", flush=True)
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    # This process's own NATS connections see the server killed on purpose: no traceback for that.
    logging.getLogger("nats.aio.client").setLevel(logging.CRITICAL)
    build_demo_models(REPO / "var")  # what the demo models file names, as `make run` builds them
    with tempfile.TemporaryDirectory(prefix="wb-faults-") as folder:
        stack = Stack(
            REPO, Path(folder), StackPorts.free(), models_file=DEMO_MODELS_FILE, extra_env=dict(FAULT_STACK_ENV)
        )
        try:
            stack.start(timeout=300)
            outcomes = asyncio.run(run_rounds(stack, args.rounds, kinds, seed))
        finally:
            stack.stop()
    for line in summary(outcomes, args.rounds, kinds):
        print(line)
    return 0 if all(outcome.clean for outcome in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
