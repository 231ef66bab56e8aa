"""Faults at a random point of a running two-model run: kill -9 of the inference worker, of each
service, of the gateway or of nats-server, then a restart; and nats-server frozen during StartRun
for longer than the append timeout. Afterwards nothing is lost or doubled (see scenario.py).

One point of each kind, drawn from WB_FAULT_SEED (random when unset; printed, and named in every
failure, so a failing point can be replayed). `python bench/faults.py N` runs N points of each.
"""

import os
import secrets

import pytest

from devstack import Stack
from tests.faults.scenario import KINDS, run_fault

pytestmark = [pytest.mark.vllm, pytest.mark.restarts_stack]

SEED = os.environ.get("WB_FAULT_SEED") or secrets.token_hex(4)


@pytest.mark.parametrize("kind", KINDS)
async def test_nothing_is_lost_or_doubled(stack: Stack, kind: str) -> None:
    outcome = await run_fault(stack, kind, SEED)
    print(outcome.report())
    assert outcome.clean, outcome.report()
