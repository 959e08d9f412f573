"""Routes of evaluations: submitted against a model and listed under it (one version's scores
on stored hold-outs), then followed under their own id."""

from __future__ import annotations

from collections.abc import AsyncIterable
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.sse import EventSourceResponse, ServerSentEvent

from service.auth.dependencies import CurrentProject
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
from service.core.events import Watch, evaluation_topic, server_sent_events
from service.core.leases import WorkStatus
from service.core.params import Limit, Offset, Ref
from service.core.schemas import Page, error_responses, stream_error_responses
from service.evaluations import service
from service.evaluations.schemas import EvaluationCreate, EvaluationOut
from service.idempotency.dependencies import IdempotencyKeyHeader

# Every route here needs a key and validates its input.
router = APIRouter(
    prefix="/v1/evaluations", tags=["evaluations"], responses=error_responses(401, 422)
)
# The submission and the model's list hang off the model scored.
model_router = APIRouter(
    prefix="/v1/models", tags=["evaluations"], responses=error_responses(401, 422)
)

DatasetFilter = Annotated[
    str | None, Query(max_length=64, description="Only the evaluations on this dataset")
]


@model_router.post(
    "/{ref:path}/evaluations",
    status_code=202,
    operation_id="create_evaluation",
    responses={
        200: {
            "model": EvaluationOut,
            "description": "This project sent the same Idempotency-Key before: that "
            "evaluation, as it is",
        },
        202: {"description": "A new evaluation, queued"},
        **error_responses(404),
    },
)
def create_evaluation(
    ref: Ref,
    body: EvaluationCreate,
    response: Response,
    project: CurrentProject,
    session: SessionDep,
    queue: QueueDep,
    store: StoreDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> EvaluationOut:
    """Queue the scoring of the model on every row of a stored labelled dataset, with the
    metrics of a job's test report. The dataset must hold what the model reads (a 422 names
    what is missing)."""
    evaluation, created = service.submit(
        session, queue, store, settings, project, ref, body.dataset_id, idempotency_key
    )
    if not created:
        response.status_code = 200
    return service.out(session, evaluation)


@model_router.get(
    "/{ref:path}/evaluations",
    operation_id="list_model_evaluations",
    responses=error_responses(404),
)
def list_model_evaluations(
    ref: Ref,
    project: CurrentProject,
    session: SessionDep,
    dataset_id: DatasetFilter = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[EvaluationOut]:
    """The evaluations of the model version the reference names, newest first; with
    `dataset_id`, those on one hold-out, to compare versions on the same rows."""
    return service.list_for_model(session, project, ref, dataset_id, limit, offset)


@router.get("", operation_id="list_evaluations")
def list_evaluations(
    project: CurrentProject,
    session: SessionDep,
    model_id: Annotated[str | None, Query(max_length=64)] = None,
    dataset_id: DatasetFilter = None,
    status: WorkStatus | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[EvaluationOut]:
    return service.list_page(session, project, limit, offset, model_id, dataset_id, status)


@router.get("/{evaluation_id}", operation_id="get_evaluation", responses=error_responses(404))
def get_evaluation(
    evaluation_id: str, project: CurrentProject, session: SessionDep
) -> EvaluationOut:
    return service.out(session, service.get(session, project, evaluation_id))


@router.post(
    "/{evaluation_id}/cancel",
    status_code=202,
    operation_id="cancel_evaluation",
    responses=error_responses(404, 409),
)
def cancel_evaluation(
    evaluation_id: str, project: CurrentProject, session: SessionDep, events: EventsDep
) -> EvaluationOut:
    evaluation = service.cancel(session, project, evaluation_id)
    end_stream_if_cancelled(session, events, evaluation, evaluation_topic(evaluation.id))
    return service.out(session, evaluation)


def watch_evaluation(
    evaluation_id: str,
    request: Request,
    project: CurrentProject,
    session: SessionDep,
    last_event_id: LastEventIdHeader = None,
) -> Watch:
    evaluation = service.get(session, project, evaluation_id)
    return watch_run(request, session, evaluation, evaluation_topic(evaluation.id), last_event_id)


@router.get(
    "/{evaluation_id}/events",
    operation_id="stream_evaluation_events",
    response_class=EventSourceResponse,
    responses=stream_error_responses(404),
)
async def stream_evaluation_events(
    watch: Annotated[Watch, Depends(watch_evaluation)],
) -> AsyncIterable[ServerSentEvent]:
    """Server-Sent Events of the evaluation: a `status` snapshot, `status`, `log`, and
    `end`, after which the stream closes. `Last-Event-ID` resumes after that event."""
    async for event in server_sent_events(watch):
        yield event
