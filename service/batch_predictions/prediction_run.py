"""One batch prediction on a worker: claim it, predict chunk by chunk, write the result.

What a row of the result is depends on the model:
- table models: one row per dataset row, after the id column (`id`, or `id_column`);
- array models (images, sequences, vectors): one row per x of the NPZ, after `row`, its index;
- forecasting: one row per window of the stored series, every window of `data.window` rows
  that the series holds, after `row`, the index of the window's last row (and the id column's
  value there, when there is one); its `value` (or `value_1..value_h` for a horizon of h) is
  the forecast of the rows after it. The last result row is the forecast past the series' end.

The claim, the kept lease, the fenced writes and the ends a run can come to are the leased-work
kernel's (service/core/leased_run.py). The result appears in the store only whole. A run whose
worker died is queued again by the reconciler and starts over from its first row; one whose
worker stops is handed back and starts over on another.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from sqlalchemy.orm import Session

from engine.artifacts import MODEL_FILES
from engine.data.arrays.dataset import StoredX
from engine.data.windows import series_of, windows_ending
from engine.inference import Predictor
from engine.pipeline import ArrayPipeline, TablePipeline, WindowPipeline
from service.batch_predictions.repository import batch_predictions
from service.batch_predictions.tables import BatchPrediction, result_key
from service.core.events import PROGRESS, batch_topic
from service.core.leased_run import LeasedRun, WorkerResources, WorkStopped
from service.core.leases import SUCCEEDED
from service.core.queue import BATCH_PREDICT_TASK
from service.datasets.service import read_table
from service.datasets.tables import Dataset, arrays_key
from service.models.tables import model_file_key

log = logging.getLogger(__name__)

# Rows predicted (and progress recorded) at a time.
CHUNK_ROWS = 4096
# The index column of array and forecasting results: the x's index, a window's last row.
ROW_COLUMN = "row"
# The id columns of a chunk, its predictions, rows done, rows in all.
Chunk = tuple[dict[str, Any], list[dict[str, Any]], int, int]


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
        pipeline = predictor.pipeline
        if isinstance(pipeline, ArrayPipeline):
            chunks = self._array_chunks(predictor)
        elif isinstance(pipeline, WindowPipeline):
            chunks = self._window_chunks(predictor)
        else:
            chunks = self._table_chunks(predictor)
        schema = result_schema(predictor, self.id_field(), batch.id_column)
        key = result_key(batch.id, batch.format)
        with store.open_write(key) as sink:
            writer = _writer(sink, schema, batch.format)
            try:
                wrote = False
                for ids, predictions, done, total in chunks:
                    writer.write_table(result_chunk(schema, ids, predictions))
                    wrote = True
                    self.record_progress(done, total)
                if not wrote:
                    writer.write_table(schema.empty_table())
            finally:
                writer.close()
        if not self.finish(SUCCEEDED, result_key=key):
            return "lost"
        return SUCCEEDED

    def id_field(self) -> pa.Field | None:
        if self.row.id_column is None:
            return None
        return self._table().schema.field(self.row.id_column)

    def _table(self) -> pa.Table:
        if getattr(self, "_read", None) is None:
            self._read = read_table(self.store, self.dataset)
        return self._read

    def _table_chunks(self, predictor: Predictor) -> Iterator[Chunk]:
        table, id_column = self._table(), self.row.id_column
        total = table.num_rows
        # Shows a run that starts over (its first worker died) from its first row.
        self.record_progress(0, total)
        for start in range(0, total, self.chunk_rows):
            rows = table.slice(start, self.chunk_rows)
            ids = {id_column: rows.column(id_column)} if id_column else {}
            yield ids, predictor.predict(rows.to_pylist()), start + rows.num_rows, total

    def _array_chunks(self, predictor: Predictor) -> Iterator[Chunk]:
        # A chunk of x at a time from the store, never the whole set in memory.
        with self.store.open_read(arrays_key(self.dataset.id)) as fh:
            stored = StoredX(fh)
            total, start = stored.n, 0
            self.record_progress(0, total)
            for x in stored.chunks(self.chunk_rows):
                stop = start + len(x)
                ids = {ROW_COLUMN: pa.array(range(start, stop), pa.int64())}
                yield ids, predictor.predict_stored(x), stop, total
                start = stop

    def _window_chunks(self, predictor: Predictor) -> Iterator[Chunk]:
        scaler, table, id_column = predictor.pipeline.scaler, self._table(), self.row.id_column
        series = series_of(table, list(scaler.channels))
        total = max(0, len(series) - scaler.window + 1)
        self.record_progress(0, total)
        for start in range(0, total, self.chunk_rows):
            stop = min(total, start + self.chunk_rows)
            last_rows = pa.array(range(start + scaler.window - 1, stop + scaler.window - 1))
            ids = {ROW_COLUMN: last_rows.cast(pa.int64())}
            if id_column:
                ids[id_column] = table.column(id_column).take(last_rows)
            windows = windows_ending(series, scaler.window, start, stop)
            yield ids, predictor.predict_stored(windows), stop, total

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


def result_schema(
    predictor: Predictor, id_field: pa.Field | None, id_column: str | None
) -> pa.Schema:
    """`row` (array models, forecasting), the id column (as in the dataset), then what the
    model predicts: `label` and one `probability_<class>` per class, `value` (or
    `value_1..value_h`, a forecast's steps), or `anomaly_score`."""
    pipeline = predictor.pipeline
    fields: list[pa.Field] = []
    if not isinstance(pipeline, TablePipeline):
        fields.append(pa.field(ROW_COLUMN, pa.int64()))
    if id_column is not None and id_field is not None:
        fields.append(id_field)
    if pipeline.target_kind == "classes":
        classes = pipeline.classes()
        fields.append(pa.field("label", pa.array(classes).type))
        fields += [pa.field(f"probability_{c}", pa.float64()) for c in classes]
    elif pipeline.target_kind == "numeric" and pipeline.output_dim > 1:
        fields += [pa.field(f"value_{k + 1}", pa.float64()) for k in range(pipeline.output_dim)]
    elif pipeline.target_kind == "numeric":
        fields.append(pa.field("value", pa.float64()))
    else:
        fields.append(pa.field("anomaly_score", pa.float64()))
    return pa.schema(fields)


def result_chunk(
    schema: pa.Schema, ids: dict[str, Any], predictions: list[dict[str, Any]]
) -> pa.Table:
    columns: dict[str, Any] = dict(ids)
    for field in schema:
        if field.name in ids:
            continue
        if field.name.startswith("probability_") and "probabilities" in predictions[0]:
            name = field.name.removeprefix("probability_")
            columns[field.name] = [p["probabilities"][name] for p in predictions]
        elif field.name.startswith("value_") and "values" in predictions[0]:
            step = int(field.name.removeprefix("value_")) - 1
            columns[field.name] = [p["values"][step] for p in predictions]
        else:
            columns[field.name] = [p[field.name] for p in predictions]
    return pa.Table.from_pydict(columns, schema=schema)


def _writer(sink: Any, schema: pa.Schema, fmt: str) -> pq.ParquetWriter | pacsv.CSVWriter:
    if fmt == "csv":
        return pacsv.CSVWriter(sink, schema)
    return pq.ParquetWriter(sink, schema)
