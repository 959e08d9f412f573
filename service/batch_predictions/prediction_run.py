"""One batch prediction on a worker: claim it, predict chunk by chunk, write the result.

The claim, the kept lease, the fenced writes and the ends a run can come to are the leased-work
kernel's (service/core/leased_run.py). The result appears in the store only whole. A run whose
worker died is queued again by the reconciler and starts over from its first row; one whose
worker stops is handed back and starts over on another.
"""

from __future__ import annotations

import logging
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from sqlalchemy.orm import Session

from engine.artifacts import MODEL_FILES
from engine.errors import EngineError
from engine.inference import Predictor
from engine.pipeline import TablePipeline
from service.batch_predictions.repository import batch_predictions
from service.batch_predictions.tables import BatchPrediction, result_key
from service.core.events import PROGRESS, batch_topic
from service.core.leased_run import LeasedRun, WorkerResources, WorkStopped
from service.core.leases import SUCCEEDED
from service.core.queue import BATCH_PREDICT_TASK
from service.datasets.service import read_table
from service.datasets.tables import Dataset
from service.models.tables import model_file_key

log = logging.getLogger(__name__)

# Rows predicted (and progress recorded) at a time.
CHUNK_ROWS = 4096


class BatchPredictionRun(LeasedRun):
    repository = batch_predictions
    task = BATCH_PREDICT_TASK
    topic_of = staticmethod(batch_topic)

    row: BatchPrediction
    dataset: Dataset

    def __init__(
        self, resources: WorkerResources, row_id: str, chunk_rows: int = CHUNK_ROWS
    ) -> None:
        super().__init__(resources, row_id)
        self.chunk_rows = chunk_rows

    def claimed(self, session: Session) -> bool:
        # The dataset's record: a dataset deleted since the submit leaves nothing to run.
        self.dataset = session.get(Dataset, self.row.dataset_id)
        return self.dataset is not None

    def work(self) -> str:
        batch, store = self.row, self.store
        predictor = Predictor.from_files(
            {name: store.read_bytes(model_file_key(batch.model_id, name)) for name in MODEL_FILES}
        )
        table = read_table(store, self.dataset)
        schema = result_schema(predictor, table, batch.id_column)
        total = table.num_rows
        # Shows a run that starts over (its first worker died) from its first row.
        self.record_progress(0, total)
        key = result_key(batch.id, batch.format)
        with store.open_write(key) as sink:
            writer = _writer(sink, schema, batch.format)
            try:
                for start in range(0, total, self.chunk_rows):
                    rows = table.slice(start, self.chunk_rows)
                    predictions = predictor.predict(rows.to_pylist())
                    writer.write_table(result_chunk(schema, rows, predictions, batch.id_column))
                    self.record_progress(start + rows.num_rows, total)
                if total == 0:
                    writer.write_table(schema.empty_table())
            finally:
                writer.close()
        if not self.finish(SUCCEEDED, result_key=key):
            return "lost"
        return SUCCEEDED

    def record_progress(self, rows_done: int, rows_total: int) -> None:
        """Progress after a chunk; a cancel, a shutdown or a lost lease stops the run here."""
        progress = {"rows_done": rows_done, "rows_total": rows_total}

        def write(session: Session) -> bool:
            if not batch_predictions.write_held(
                session, self.row_id, self.token, progress=progress
            ):
                return False
            # Read here too, not only by the lease keeper: a cancel stops the very next chunk.
            if batch_predictions.is_cancel_requested(session, self.row_id):
                self.keeper.cancel_requested = True
            return True

        if self.write(write):
            self.publish(PROGRESS, progress)
        if self.should_stop():
            raise WorkStopped


def run_batch_prediction(
    resources: WorkerResources, batch_id: str, chunk_rows: int = CHUNK_ROWS
) -> str:
    """Run batch prediction `batch_id` if this worker can claim it; returns what happened."""
    return BatchPredictionRun(resources, batch_id, chunk_rows).execute()


def result_schema(predictor: Predictor, table: pa.Table, id_column: str | None) -> pa.Schema:
    """The id column (as in the dataset), then what the model predicts: `label` and one
    `probability_<class>` per class, `value`, or `anomaly_score`."""
    pipeline = predictor.pipeline
    if not isinstance(pipeline, TablePipeline):
        raise EngineError(f"batch prediction reads tables; this model reads {pipeline.kind}")
    fields: list[pa.Field] = []
    if id_column is not None:
        fields.append(table.schema.field(id_column))
    if pipeline.target_kind == "classes":
        classes = pipeline.classes()
        fields.append(pa.field("label", pa.array(classes).type))
        fields += [pa.field(f"probability_{c}", pa.float64()) for c in classes]
    elif pipeline.target_kind == "numeric":
        fields.append(pa.field("value", pa.float64()))
    else:
        fields.append(pa.field("anomaly_score", pa.float64()))
    return pa.schema(fields)


def result_chunk(
    schema: pa.Schema, rows: pa.Table, predictions: list[dict[str, Any]], id_column: str | None
) -> pa.Table:
    columns: dict[str, Any] = {}
    if id_column is not None:
        columns[id_column] = rows.column(id_column)
    for field in schema:
        if field.name == id_column:
            continue
        if field.name.startswith("probability_") and "probabilities" in predictions[0]:
            name = field.name.removeprefix("probability_")
            columns[field.name] = [p["probabilities"][name] for p in predictions]
        else:
            columns[field.name] = [p[field.name] for p in predictions]
    return pa.Table.from_pydict(columns, schema=schema)


def _writer(sink: Any, schema: pa.Schema, fmt: str) -> pq.ParquetWriter | pacsv.CSVWriter:
    if fmt == "csv":
        return pacsv.CSVWriter(sink, schema)
    return pq.ParquetWriter(sink, schema)
