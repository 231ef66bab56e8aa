"""ReadRecords splits its stream by size as well as by count, so any client can receive it; records
carry their metadata and sampling over gRPC."""

from collections.abc import AsyncIterator, Sequence
from typing import Any

from datasets_service.domain.records import ChatMessage, Record, Sampling
from datasets_service.grpc.servicer import BYTES_PER_MESSAGE, RECORDS_PER_MESSAGE, DatasetServicer
from workbench.datasets.v1.datasets_pb2 import ReadRecordsRequest


class RecordsOnly:
    """The one application call ReadRecords makes, answering with the records it was given."""

    def __init__(self, records: Sequence[Record]) -> None:
        self.records = records

    async def read_records(self, dataset_id: str, offset: int = 0, limit: int = 0) -> AsyncIterator[Record]:
        for record in self.records:
            yield record


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


async def test_records_carry_their_metadata_and_only_the_sampling_they_set() -> None:
    records = [
        Record("a", 0, messages=(ChatMessage("user", "Hi"),), metadata_json='{"name": "Ada"}'),
        Record("b", 1, prompt="p", sampling=Sampling(temperature=0.0, max_tokens=12)),
    ]

    [message] = await read(records)
    first, second = message.records

    assert (first.metadata_json, first.messages[0].content, first.prompt) == ('{"name": "Ada"}', "Hi", "")
    assert [field.name for field, _ in first.sampling.ListFields()] == []
    assert second.metadata_json == "{}"
    assert {field.name: value for field, value in second.sampling.ListFields()} == {
        "temperature": 0.0,
        "max_tokens": 12,
    }
