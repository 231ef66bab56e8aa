"""The models' answers of a dataset, as the annotations read model holds them (for the Label Studio sync)."""

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from annotations_service.adapters.tables import OutputRow, ResultRow


class DatasetAnswers:
    """Reads of the outputs tables that the Label Studio sync needs; each opens its own short session."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def answers(self, dataset_id: str) -> dict[str, dict[str, str]]:
        """Each model's latest answer by record id then model id (failed generations have none)."""
        query = (
            select(OutputRow.record_id, OutputRow.model_id, OutputRow.output_text)
            .where(OutputRow.dataset_id == dataset_id, OutputRow.error == "")
            .order_by(col(OutputRow.record_id), col(OutputRow.model_id))
        )
        found: dict[str, dict[str, str]] = {}
        with Session(self.engine) as session:
            for record_id, model_id, text in session.exec(query):
                found.setdefault(record_id, {})[model_id] = text
        return found

    def shown_run(self, dataset_id: str, record_id: str, model_id: str, text: str) -> str:
        """The run whose answer of the model for the record was that text ("" when none was): the latest
        output if it still says so, else an earlier run's."""
        with Session(self.engine) as session:
            latest = session.get(OutputRow, (dataset_id, record_id, model_id))
            if latest is not None and latest.output_text == text:
                return latest.run_id
            query = select(ResultRow.run_id).where(
                ResultRow.dataset_id == dataset_id,
                ResultRow.record_id == record_id,
                ResultRow.model_id == model_id,
                ResultRow.output_text == text,
            )
            return session.exec(query.order_by(col(ResultRow.run_id))).first() or ""
