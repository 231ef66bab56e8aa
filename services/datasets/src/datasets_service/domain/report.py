"""What validating an upload found: each problem (where and why), the first ones, how many more."""

from dataclasses import dataclass

from workbench.datasets.v1 import datasets_pb2 as pb

MAX_PROBLEMS = 20  # problems listed in a report; the others are only counted


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem in an uploaded file: where (line or row, field) and what is wrong."""

    line: int
    reason: str
    field: str | None = None
    line_word: str = "line"  # "line" in a JSONL file, "row" in a CSV or Parquet file

    def __str__(self) -> str:
        where = f'field "{self.field}" ' if self.field else ""
        return f"{self.line_word} {self.line}: {where}{self.reason}"


@dataclass(frozen=True, slots=True)
class ValidationReport:
    """The first problems in file order, how many more there were, and the records left out."""

    problems: tuple[Problem, ...] = ()
    more: int = 0
    skipped_records: int = 0
    line_word: str = "line"

    def as_message(self) -> pb.ValidationReport:
        """The report as the contract carries it (in an upload's answer or its error's details)."""
        return pb.ValidationReport(
            problems=[pb.Problem(line=p.line, field=p.field or "", reason=p.reason) for p in self.problems],
            more=self.more,
            skipped_records=self.skipped_records,
            line_word=self.line_word,
        )

    def __str__(self) -> str:
        listed = [str(problem) for problem in self.problems]
        return "\n".join(listed + ([f"... and {self.more} more"] if self.more else []))
