"""Routes of batch prediction: submitted against a model, then followed under its own id."""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterator
from typing import Annotated, BinaryIO

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import StreamingResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent

from service.auth.dependencies import CurrentProject
from service.batch_predictions import service
from service.batch_predictions.schemas import BatchPredictionCreate, BatchPredictionOut
from service.core.deps import (
    EventsDep,
    LastEventIdHeader,
    QueueDep,
    SessionDep,
    SettingsDep,
    StoreDep,
    end_stream_if_cancelled,
    watch_run,
)
from service.core.events import Watch, batch_topic, server_sent_events
from service.core.leases import WorkStatus
from service.core.params import Limit, Offset, Ref
from service.core.schemas import Page, error_responses, stream_error_responses
from service.idempotency.dependencies import IdempotencyKeyHeader

# Every route here needs a key and validates its input.
router = APIRouter(
    prefix="/v1/batch-predictions",
    tags=["batch-predictions"],
    responses=error_responses(401, 422),
)
# The submission hangs off the model it runs.
model_router = APIRouter(
    prefix="/v1/models", tags=["batch-predictions"], responses=error_responses(401, 422)
)

READ_CHUNK_BYTES = 1 << 20


@model_router.post(
    "/{ref:path}/batch-predictions",
    status_code=202,
    operation_id="create_batch_prediction",
    responses={
        200: {
            "model": BatchPredictionOut,
            "description": "This project sent the same Idempotency-Key before: that batch "
            "prediction, as it is",
        },
        202: {"description": "A new batch prediction, queued"},
        **error_responses(404, 409),
    },
)
def create_batch_prediction(
    ref: Ref,
    body: BatchPredictionCreate,
    response: Response,
    project: CurrentProject,
    session: SessionDep,
    queue: QueueDep,
    store: StoreDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> BatchPredictionOut:
    """Queue predictions of the model over every row of a dataset, written as Parquet or CSV:
    `row` (array models: the x's index; forecasting: the last row of each window of the
    series), the id column (if any), then `label` and `probability_<class>` per class,
    `value` (`value_1..value_h` for a forecast horizon), or `anomaly_score`. A dataset of
    another kind than the model reads is a 409; another shape or a missing column, a 422."""
    batch, created = service.submit(
        session,
        queue,
        store,
        settings,
        project,
        ref,
        body.dataset_id,
        body.format,
        body.id_column,
        idempotency_key,
    )
    if not created:
        response.status_code = 200
    return service.batch_out(batch)


@router.get("", operation_id="list_batch_predictions")
def list_batch_predictions(
    project: CurrentProject,
    session: SessionDep,
    status: WorkStatus | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[BatchPredictionOut]:
    return service.list_page(session, project, status, limit, offset)


@router.get(
    "/{batch_prediction_id}",
    operation_id="get_batch_prediction",
    responses=error_responses(404),
)
def get_batch_prediction(
    batch_prediction_id: str, project: CurrentProject, session: SessionDep
) -> BatchPredictionOut:
    return service.batch_out(service.get(session, project, batch_prediction_id))


@router.post(
    "/{batch_prediction_id}/cancel",
    status_code=202,
    operation_id="cancel_batch_prediction",
    responses=error_responses(404, 409),
)
def cancel_batch_prediction(
    batch_prediction_id: str, project: CurrentProject, session: SessionDep, events: EventsDep
) -> BatchPredictionOut:
    batch = service.cancel(session, project, batch_prediction_id)
    end_stream_if_cancelled(session, events, batch, batch_topic(batch.id))
    return service.batch_out(batch)


def watch_batch_prediction(
    batch_prediction_id: str,
    request: Request,
    project: CurrentProject,
    session: SessionDep,
    last_event_id: LastEventIdHeader = None,
) -> Watch:
    batch = service.get(session, project, batch_prediction_id)
    return watch_run(request, session, batch, batch_topic(batch.id), last_event_id)


@router.get(
    "/{batch_prediction_id}/events",
    operation_id="stream_batch_prediction_events",
    response_class=EventSourceResponse,
    responses=stream_error_responses(404),
)
async def stream_batch_prediction_events(
    watch: Annotated[Watch, Depends(watch_batch_prediction)],
) -> AsyncIterable[ServerSentEvent]:
    """Server-Sent Events of the run: a `status` snapshot, `progress` (rows_done,
    rows_total) after each chunk, `status`, `log`, and `end`, after which the stream closes.
    `Last-Event-ID` resumes after that event."""
    async for event in server_sent_events(watch):
        yield event


@router.get(
    "/{batch_prediction_id}/result",
    operation_id="get_batch_prediction_result",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "The predictions file",
            "content": {
                "application/vnd.apache.parquet": {
                    "schema": {"type": "string", "format": "binary"}
                },
                "text/csv": {"schema": {"type": "string"}},
            },
        },
        **error_responses(404, 409),
    },
)
def get_batch_prediction_result(
    batch_prediction_id: str, project: CurrentProject, session: SessionDep, store: StoreDep
) -> StreamingResponse:
    """The predictions once the run has succeeded; 409 while it is queued or running."""
    fh, media_type, filename = service.open_result(session, store, project, batch_prediction_id)
    return StreamingResponse(
        _chunks(fh),
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _chunks(fh: BinaryIO) -> Iterator[bytes]:
    with fh:
        while chunk := fh.read(READ_CHUNK_BYTES):
            yield chunk
