"""Domain values to proto messages and back (the only place that knows both)."""

from collections.abc import Iterable

from datasets_service.domain.dataset import DatasetInfo
from datasets_service.domain.records import Record
from workbench.common.v1.common_pb2 import ChatMessage
from workbench.datasets.v1 import datasets_pb2 as pb


def dataset_to_proto(info: DatasetInfo) -> pb.Dataset:
    return pb.Dataset(**info.message_fields())


def records_to_proto(records: Iterable[Record]) -> list[pb.Record]:
    return [
        pb.Record(
            record_id=record.record_id,
            index=record.index,
            prompt=record.prompt or "",
            messages=[ChatMessage(role=message.role, content=message.content) for message in record.messages],
        )
        for record in records
    ]
