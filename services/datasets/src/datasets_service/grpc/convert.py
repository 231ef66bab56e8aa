"""Domain values to proto messages and back (the only place that knows both)."""

from collections.abc import Iterable

from datasets_service.application import RecordsPage, UploadOutcome
from datasets_service.domain.dataset import DatasetInfo
from datasets_service.domain.records import Record
from workbench.common.v1.common_pb2 import ChatMessage
from workbench.datasets.v1 import datasets_pb2 as pb


def dataset_to_proto(info: DatasetInfo) -> pb.Dataset:
    return pb.Dataset(**info.message_fields())


def record_to_proto(record: Record) -> pb.Record:
    return pb.Record(
        record_id=record.record_id,
        index=record.index,
        prompt=record.prompt or "",
        messages=[ChatMessage(role=message.role, content=message.content) for message in record.messages],
        metadata_json=record.metadata_json,
        sampling=pb.RecordSampling(
            temperature=record.sampling.temperature,  # None: unset
            top_p=record.sampling.top_p,
            max_tokens=record.sampling.max_tokens,
            seed=record.sampling.seed,
        ),
        json_schema=record.json_schema,
    )


def records_to_proto(records: Iterable[Record]) -> list[pb.Record]:
    return [record_to_proto(record) for record in records]


def upload_to_proto(outcome: UploadOutcome) -> pb.UploadDatasetResponse:
    return pb.UploadDatasetResponse(
        dataset=dataset_to_proto(outcome.dataset),
        already_registered=outcome.already_registered,
        report=outcome.report.as_message(),
    )


def records_page_to_proto(page: RecordsPage) -> pb.ListRecordsResponse:
    return pb.ListRecordsResponse(records=records_to_proto(page.records), total=page.total)
