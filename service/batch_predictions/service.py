"""Batch predictions: check a model against a dataset, queue the run, show it, cancel it,
hand out its result."""

from __future__ import annotations

import json
from typing import BinaryIO

from sqlalchemy.orm import Session

from engine.artifacts import PREPROCESS_FILE
from engine.pipeline import ArrayPipeline, Pipeline, WindowPipeline, pipeline_from_dict
from service.auth.tables import Project
from service.batch_predictions.repository import batch_predictions
from service.batch_predictions.schemas import (
    BatchError,
    BatchPredictionOut,
    BatchProgress,
)
from service.batch_predictions.tables import BatchPrediction
from service.core.database import new_id, utcnow
from service.core.deps import after_commit
from service.core.errors import Conflict, found, invalid_field
from service.core.leases import QUEUED, RUNNING, SUCCEEDED, request_cancel
from service.core.queue import BATCH_PREDICT_TASK, JobQueue
from service.core.schemas import Page
from service.core.settings import Settings
from service.core.store import Store
from service.datasets.service import get_dataset
from service.datasets.tables import Dataset
from service.idempotency import service as idempotency
from service.models.service import resolve_scoring_model
from service.models.tables import model_file_key

MEDIA_TYPES = {"parquet": "application/vnd.apache.parquet", "csv": "text/csv"}


def submit(
    session: Session,
    queue: JobQueue,
    store: Store,
    settings: Settings,
    project: Project,
    ref: str,
    dataset_id: str,
    fmt: str,
    id_column: str | None,
    idempotency_key: str | None = None,
) -> tuple[BatchPrediction, bool]:
    """Resolve the model now, check the dataset has every column it reads, then queue: the
    batch prediction and True; or the one this project's `idempotency_key` created before
    and False."""
    kind = idempotency.BATCH_PREDICTION
    earlier = idempotency.earlier_resource(session, project.id, kind, idempotency_key)
    if earlier is not None:
        return get(session, project, earlier), False
    model = resolve_scoring_model(session, project.id, ref)
    dataset = get_dataset(session, project, dataset_id)
    pipeline = pipeline_from_dict(
        json.loads(store.read_bytes(model_file_key(model.id, PREPROCESS_FILE)))
    )
    rows_total, id_column = _check_pair(ref, pipeline, dataset, id_column)
    batch_id = new_id("bp")
    winner = idempotency.claim(session, project.id, kind, idempotency_key, batch_id)
    if winner is not None:
        return get(session, project, winner), False
    batch = batch_predictions.add(
        session,
        BatchPrediction(
            id=batch_id,
            project_id=project.id,
            model_id=model.id,
            dataset_id=dataset.id,
            format=fmt,
            id_column=id_column,
            status=QUEUED,
            queue=settings.default_queue,
            progress={"rows_done": 0, "rows_total": rows_total},
            # Sent right after the commit; the reconciler sends it again if it is lost.
            enqueued_at=utcnow(),
        ),
    )
    after_commit(session, lambda: queue.enqueue(BATCH_PREDICT_TASK, batch.id, batch.queue))
    return batch, True


def _check_pair(
    ref: str, pipeline: Pipeline, dataset: Dataset, id_column: str | None
) -> tuple[int, str | None]:
    """Whether the model can read the dataset: (the result's rows, the id column). Another
    kind of data is a 409; a shape, a column or a length that does not fit, a 422."""
    reads = {"table": "table rows", "arrays": "arrays", "windows": "a time-series table"}
    wants_arrays = isinstance(pipeline, ArrayPipeline)
    if wants_arrays != (dataset.kind == "arrays"):
        raise Conflict(
            f"model {ref!r} reads {reads[pipeline.kind]}; dataset {dataset.id!r} holds "
            f"{dataset.kind}",
            code="kind_mismatch",
            details={"model_reads": pipeline.kind, "dataset_kind": dataset.kind},
        )
    if isinstance(pipeline, ArrayPipeline):
        summary = dataset.arrays or {}
        preprocessor = pipeline.preprocessor
        if summary.get("kind") != preprocessor.kind:
            raise Conflict(
                f"model {ref!r} reads {preprocessor.kind}s; dataset {dataset.id!r} holds "
                f"{summary.get('kind')}s",
                code="kind_mismatch",
                details={"model_reads": preprocessor.kind, "dataset_kind": summary.get("kind")},
            )
        if list(summary.get("shape") or []) != list(preprocessor.source_shape):
            raise invalid_field(
                "dataset_id",
                f"x has shape {summary.get('shape')} per row; model {ref!r} reads "
                f"{preprocessor.source_shape}",
                code="shape_mismatch",
            )
        if id_column is not None:
            raise invalid_field(
                "id_column", "array datasets have no columns: results carry `row`, the index"
            )
        return dataset.rows, None
    columns = {c["name"] for c in dataset.columns}
    if isinstance(pipeline, WindowPipeline):
        read = list(pipeline.scaler.channels)
    else:
        read = [f.name for f in pipeline.preprocessor.features]
    missing = [name for name in read if name not in columns]
    if missing:
        raise invalid_field(
            "dataset_id",
            f"the dataset lacks column {missing[0]!r} that model {ref!r} reads"
            + (f" (and {len(missing) - 1} more: {missing[1:6]})" if len(missing) > 1 else ""),
            code="missing_column",
        )
    if id_column is not None and id_column not in columns:
        raise invalid_field("id_column", f"no column {id_column!r} in the dataset")
    if id_column is None and "id" in columns:
        id_column = "id"
    if isinstance(pipeline, WindowPipeline):
        window = pipeline.scaler.window
        if dataset.rows < window:
            raise invalid_field(
                "dataset_id",
                f"the series has {dataset.rows} rows; model {ref!r} forecasts from windows "
                f"of {window}",
                code="series_too_short",
            )
        return dataset.rows - window + 1, id_column
    return dataset.rows, id_column


def get(session: Session, project: Project, batch_id: str) -> BatchPrediction:
    return found(
        batch_predictions.get(session, project.id, batch_id), batch_predictions.noun, batch_id
    )


def list_page(
    session: Session, project: Project, status: str | None, limit: int, offset: int
) -> Page[BatchPredictionOut]:
    rows = batch_predictions.list_page(session, project.id, status, limit, offset)
    return Page[BatchPredictionOut](
        items=[batch_out(b) for b in rows],
        total=batch_predictions.count(session, project.id, status),
        limit=limit,
        offset=offset,
    )


def cancel(session: Session, project: Project, batch_id: str) -> BatchPrediction:
    """A queued run is cancelled at once; a running one stops after its current chunk."""
    batch = get(session, project, batch_id)
    request_cancel(batch, batch_predictions.noun)
    session.flush()
    return batch


def open_result(
    session: Session, store: Store, project: Project, batch_id: str
) -> tuple[BinaryIO, str, str]:
    """(the result file, its media type, a file name); 409 until the run has succeeded."""
    batch = get(session, project, batch_id)
    if batch.status != SUCCEEDED or batch.result_key is None:
        hint = {
            QUEUED: "it is queued; poll GET /v1/batch-predictions/{id} until it has succeeded",
            RUNNING: "it is still running; poll GET /v1/batch-predictions/{id} until it has "
            "succeeded",
        }.get(batch.status, "it has no result")
        raise Conflict(
            f"batch prediction {batch_id!r} is {batch.status}: {hint}",
            code="not_ready",
            details={"status": batch.status},
        )
    return (
        store.open_read(batch.result_key),
        MEDIA_TYPES[batch.format],
        f"{batch.id}-predictions.{batch.format}",
    )


def batch_out(batch: BatchPrediction) -> BatchPredictionOut:
    error = (
        BatchError(code=batch.error_code, message=batch.error_message or "")
        if batch.error_code
        else None
    )
    progress = batch.progress or {"rows_done": 0, "rows_total": 0}
    return BatchPredictionOut(
        id=batch.id,
        model_id=batch.model_id,
        dataset_id=batch.dataset_id,
        format=batch.format,
        id_column=batch.id_column,
        status=batch.status,
        attempts=batch.attempts,
        cancel_requested=batch.cancel_requested,
        progress=BatchProgress(**progress),
        error=error,
        result_url=(
            f"/v1/batch-predictions/{batch.id}/result" if batch.status == SUCCEEDED else None
        ),
        created_at=batch.created_at,
        started_at=batch.started_at,
        finished_at=batch.finished_at,
    )
