"""The read model's tables (SQLModel); names carry the context prefix so a shared database is fine."""

from datetime import datetime

from sqlmodel import Column, Field, SQLModel, Text


class _ModelOutputKey(SQLModel):
    """One model's output for one record of a dataset: the key of both tables."""

    dataset_id: str = Field(primary_key=True)
    record_id: str = Field(primary_key=True)
    model_id: str = Field(primary_key=True)


class OutputRow(_ModelOutputKey, table=True):
    """The latest output of a model for a record, from the inference context's ResultRecorded events."""

    __tablename__ = "annotations_outputs"

    run_id: str
    output_text: str
    error: str = ""
    sequence: int


class AnnotationRow(_ModelOutputKey, table=True):
    """The current annotation of a model's output for a record."""

    __tablename__ = "annotations_annotations"

    kind: int
    output_text: str
    note: str = ""
    annotator: str = ""
    source: str = ""
    # The stream sequence of the record's last annotation event (any model): what a writer expects.
    version: int
    recorded_at: datetime | None = None
    run_id: str = ""  # the run whose result was judged


class ResultRow(SQLModel, table=True):
    """Every run's output for a record, so a mark stores the very answer its annotator was shown."""

    __tablename__ = "annotations_results"

    run_id: str = Field(primary_key=True)
    record_id: str = Field(primary_key=True)
    dataset_id: str = Field(index=True)
    model_id: str
    output_text: str = Field(sa_column=Column(Text, nullable=False))
    error: str = ""


class DeletedDataset(SQLModel, table=True):
    """A dataset deleted in the datasets context: its outputs and annotations are hidden, now and later."""

    __tablename__ = "annotations_deleted_datasets"

    dataset_id: str = Field(primary_key=True)


class RunRow(SQLModel, table=True):
    """What reproduces a run, from the inference context's RunRequested and RunStarted: exports carry it."""

    __tablename__ = "annotations_runs"

    run_id: str = Field(primary_key=True)
    reproducibility: str = Field(sa_column=Column(Text, nullable=False))  # a JSON object
