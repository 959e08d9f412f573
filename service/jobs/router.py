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
from service.core.events import Watch, job_topic, server_sent_events
from service.core.leases import WorkStatus, status_snapshot
from service.core.params import Limit, Offset
from service.core.schemas import Page, error_responses, stream_error_responses
from service.idempotency.dependencies import IdempotencyKeyHeader
from service.jobs import service
from service.jobs.schemas import JobComparison, JobCreate, JobMetricsOut, JobOut

# Every route here needs a key and validates its input.
router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=error_responses(401, 422))

# One comma-separated parameter, not a repeated one: the form a client writes by hand and
# pastes from a list of ids. 20 ids of up to 40 characters and their commas fit.
CompareIds = Annotated[
    str,
    Query(
        min_length=1,
        max_length=1000,
        description="2 to 20 ids of this project's jobs, comma-separated, each once",
        examples=["job_4f1c...,job_9a2e..."],
    ),
]


@router.post(
    "",
    status_code=202,
    operation_id="create_job",
    responses={
        200: {
            "model": JobOut,
            "description": "This project sent the same Idempotency-Key before: that job, as it is",
        },
        202: {"description": "A new job, queued"},
        **error_responses(404),
    },
)
def create_job(
    body: JobCreate,
    response: Response,
    project: CurrentProject,
    session: SessionDep,
    queue: QueueDep,
    store: StoreDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JobOut:
    """Queue a training job: the spec is checked against the dataset before it is queued.
    `validation_dataset_id` and `test_dataset_id` name held-out sets uploaded apart; the
    training dataset then gives up no rows to those splits."""
    job, created = service.submit_job(
        session,
        queue,
        store,
        settings,
        project,
        body.dataset_id,
        body.spec,
        idempotency_key,
        validation_dataset_id=body.validation_dataset_id,
        test_dataset_id=body.test_dataset_id,
    )
    if not created:
        response.status_code = 200
    return service.job_view(session, settings, job)


@router.get("", operation_id="list_jobs")
def list_jobs(
    project: CurrentProject,
    session: SessionDep,
    settings: SettingsDep,
    status: WorkStatus | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[JobOut]:
    return service.list_jobs(session, settings, project, status, limit, offset)


# Before /{job_id}, which would take "compare" for a job id.
@router.get("/compare", operation_id="compare_jobs", responses=error_responses(404))
def compare_jobs(ids: CompareIds, project: CurrentProject, session: SessionDep) -> JobComparison:
    """Several runs side by side, to overlay: per job its curves, best and last epochs, and
    the spec paths whose values differ among the jobs."""
    return service.compare_jobs(session, project, [part.strip() for part in ids.split(",")])


@router.get("/{job_id}", operation_id="get_job", responses=error_responses(404))
def get_job(
    job_id: str, project: CurrentProject, session: SessionDep, settings: SettingsDep
) -> JobOut:
    return service.job_view(session, settings, service.get_job(session, project, job_id))


@router.get("/{job_id}/metrics", operation_id="get_job_metrics", responses=error_responses(404))
def get_job_metrics(job_id: str, project: CurrentProject, session: SessionDep) -> JobMetricsOut:
    """Per-epoch history: training and validation loss, and the task's metrics."""
    return service.job_metrics(session, project, job_id)


@router.post(
    "/{job_id}/cancel",
    status_code=202,
    operation_id="cancel_job",
    responses=error_responses(404, 409),
)
def cancel_job(
    job_id: str, project: CurrentProject, session: SessionDep, events: EventsDep
) -> JobOut:
    job = service.cancel_job(session, project, job_id)
    end_stream_if_cancelled(session, events, job, job_topic(job.id))
    return service.job_out(job)


def watch_job(
    job_id: str,
    request: Request,
    project: CurrentProject,
    session: SessionDep,
    last_event_id: LastEventIdHeader = None,
) -> Watch:
    job = service.get_job(session, project, job_id)
    snapshot = {**status_snapshot(job), "metrics": job.metrics}
    return watch_run(request, session, job, job_topic(job.id), last_event_id, snapshot)


@router.get(
    "/{job_id}/events",
    operation_id="stream_job_events",
    response_class=EventSourceResponse,
    responses=stream_error_responses(404),
)
async def stream_job_events(
    watch: Annotated[Watch, Depends(watch_job)],
) -> AsyncIterable[ServerSentEvent]:
    """Server-Sent Events of the job as it runs: first a `status` snapshot, then `progress`
    (epoch, metrics, samples/s, ETA) each epoch, `warning`, `status` and `log`, and `end`
    once it has ended, after which the stream closes. Send `Last-Event-ID` to resume after
    that event; a `: ping` comment keeps a quiet stream open."""
    async for event in server_sent_events(watch):
        yield event
