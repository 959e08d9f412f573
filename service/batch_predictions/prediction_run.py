"""Running a batch prediction on a worker: claim it, predict chunk by chunk, write the result.

The worker task calls `run_batch_prediction`. Every write is fenced by the lease token, and
each chunk's progress write renews the lease, so a duplicate delivery does nothing and a
worker that lost its lease changes nothing. The result appears in the store only whole. A
run whose worker died is queued again by the reconciler (service/jobs/reconciler.py) and
starts over from its first row.
"""

from __future__ import annotations

import logging
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from engine.artifacts import MODEL_FILES
from engine.errors import EngineError
from engine.inference import Predictor
from engine.pipeline import TablePipeline
from service.batch_predictions import repository
from service.batch_predictions.tables import result_key
from service.core.database import transaction
from service.datasets.service import read_table
from service.datasets.tables import Dataset
from service.jobs.execution import JobResources, retrying_write
from service.jobs.tables import CANCELLED, FAILED, SUCCEEDED
from service.models.tables import model_file_key

log = logging.getLogger(__name__)

# Rows predicted (and progress recorded) at a time.
CHUNK_ROWS = 4096


class _Stopped(Exception):
    """The run was cancelled or its lease lost between chunks."""


def run_batch_prediction(
    resources: JobResources, batch_id: str, chunk_rows: int = CHUNK_ROWS
) -> str:
    """Run batch prediction `batch_id` if this worker can claim it; returns what happened."""
    lease_seconds = resources.settings.lease_seconds
    with transaction(resources.session_factory) as session:
        token = repository.claim(session, batch_id, resources.worker_id, lease_seconds)
        batch = repository.get_any(session, batch_id) if token else None
        dataset = session.get(Dataset, batch.dataset_id) if batch else None
    if token is None or batch is None or dataset is None:
        log.info("batch prediction %s not claimed: finished or held by another worker", batch_id)
        return "skipped"

    def finish(status: str, **values: Any) -> None:
        retrying_write(
            resources,
            lambda session: repository.finish(session, batch_id, token, status, **values),
        )

    store = resources.store
    key = result_key(batch_id, batch.format)
    try:
        predictor = Predictor.from_files(
            {name: store.read_bytes(model_file_key(batch.model_id, name)) for name in MODEL_FILES}
        )
        table = read_table(store, dataset)
        schema = result_schema(predictor, table, batch.id_column)
        total = table.num_rows

        def record_progress(rows_done: int) -> None:
            progress = {"rows_done": rows_done, "rows_total": total}
            if not retrying_write(
                resources,
                lambda session: repository.record_progress(
                    session, batch_id, token, progress, lease_seconds
                ),
            ):
                raise _Stopped

        # Renews the lease that loading the model and the data used, and shows a run that
        # starts over (its first worker died) from its first row.
        record_progress(0)
        with store.open_write(key) as sink:
            writer = _writer(sink, schema, batch.format)
            try:
                for start in range(0, total, chunk_rows):
                    rows = table.slice(start, chunk_rows)
                    predictions = predictor.predict(rows.to_pylist())
                    writer.write_table(result_chunk(schema, rows, predictions, batch.id_column))
                    record_progress(start + rows.num_rows)
                if total == 0:
                    writer.write_table(schema.empty_table())
            finally:
                writer.close()
        finish(SUCCEEDED, result_key=key)
        return SUCCEEDED
    except _Stopped:
        with transaction(resources.session_factory) as session:
            cancelled = repository.is_cancel_requested(session, batch_id)
        if cancelled:
            finish(CANCELLED)
            return CANCELLED
        return "lost"
    except EngineError as exc:
        finish(FAILED, error_code=exc.code, error_message=exc.message)
        return FAILED
    except Exception as exc:
        log.exception("batch prediction %s failed", batch_id)
        finish(FAILED, error_code="internal_error", error_message=f"{type(exc).__name__}: {exc}")
        return FAILED


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
