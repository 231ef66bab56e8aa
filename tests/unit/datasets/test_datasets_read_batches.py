"""ReadRecords splits its stream by size as well as by count, so any client can receive it."""

from collections.abc import Sequence
from typing import Any

from datasets_service.domain.records import Record
from datasets_service.grpc.servicer import BYTES_PER_MESSAGE, RECORDS_PER_MESSAGE, DatasetServicer
from workbench.datasets.v1.datasets_pb2 import ReadRecordsRequest


class RecordsOnly:
    """The one application call ReadRecords makes, answering with the records it was given."""

    def __init__(self, records: Sequence[Record]) -> None:
        self.records = records

    async def read_records(self, dataset_id: str, offset: int = 0, limit: int = 0) -> Sequence[Record]:
        return self.records


async def read(records: Sequence[Record]) -> list[Any]:
    servicer = DatasetServicer(RecordsOnly(records))  # type: ignore[arg-type]
    return [message async for message in servicer.ReadRecords(ReadRecordsRequest(dataset_id="ds"), None)]  # type: ignore[arg-type]


async def test_small_records_go_in_messages_of_a_fixed_count() -> None:
    messages = await read([Record(f"r{i}", i, prompt="hi") for i in range(600)])

    assert [len(m.records) for m in messages] == [
        RECORDS_PER_MESSAGE,
        RECORDS_PER_MESSAGE,
        600 - 2 * RECORDS_PER_MESSAGE,
    ]


async def test_large_records_are_split_under_the_byte_budget_in_order() -> None:
    big = "x" * (BYTES_PER_MESSAGE // 5)
    messages = await read([Record(f"r{i}", i, prompt=big) for i in range(12)] + [Record("huge", 12, prompt=big * 7)])

    assert all(m.ByteSize() <= BYTES_PER_MESSAGE for m in messages[:-1])
    assert [len(m.records) for m in messages][-1] == 1  # a record over the budget travels alone
    assert [r.record_id for m in messages for r in m.records] == [*(f"r{i}" for i in range(12)), "huge"]
