from __future__ import annotations

from collections.abc import AsyncIterable
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.sse import EventSourceResponse, ServerSentEvent

from engine.search.space import SearchSpace
from service.auth.dependencies import CurrentProject
from service.core.deps import (
    EventsDep,
    LastEventIdHeader,
    QueueDep,
    SessionDep,
    SettingsDep,
    StoreDep,
    after_commit,
    open_watch,
)
from service.core.events import TRIAL, Watch, job_topic, server_sent_events, study_topic
from service.core.leases import CANCELLED as JOB_CANCELLED
from service.core.leases import FINISHED
from service.core.params import Limit, Offset
from service.core.queue import TRAIN_JOB_TASK
from service.core.schemas import Page, error_responses, stream_error_responses
from service.studies import service
from service.studies.schemas import StudyCreate, StudyOut, TrialOut

router = APIRouter(prefix="/v1/studies", tags=["studies"], responses=error_responses(401, 422))


@router.post("", status_code=202, operation_id="create_study", responses=error_responses(404))
def create_study(
    body: StudyCreate,
    project: CurrentProject,
    session: SessionDep,
    queue: QueueDep,
    store: StoreDep,
    settings: SettingsDep,
    events: EventsDep,
) -> StudyOut:
    """Start a hyperparameter search: every corner of the space is checked against the spec
    rules and the dataset, then the first `parallel_trials` trials are queued as jobs."""
    study, trials = service.create_study(session, store, settings, project, body)
    topic = study_topic(study.id)
    for job in trials:
        after_commit(session, lambda job=job: queue.enqueue(TRAIN_JOB_TASK, job.id, job.queue))
        trial = service.trial_event(session, study, job)
        after_commit(session, lambda trial=trial: events.publish(topic, TRIAL, trial))
    return service.study_out(session, study)


@router.get("", operation_id="list_studies")
def list_studies(
    project: CurrentProject,
    session: SessionDep,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[StudyOut]:
    rows, total = service.list_studies(session, project, limit, offset)
    return Page[StudyOut](
        items=[service.study_out(session, s) for s in rows],
        total=total,
        limit=limit,
        offset=offset,
    )


@router.get("/{study_id}", operation_id="get_study", responses=error_responses(404))
def get_study(study_id: str, project: CurrentProject, session: SessionDep) -> StudyOut:
    """State, trial counts, the best trial and the trials table, and parameter importances."""
    return service.study_out(session, service.get_study(session, project, study_id))


@router.get("/{study_id}/trials", operation_id="list_study_trials", responses=error_responses(404))
def list_trials(
    study_id: str,
    project: CurrentProject,
    session: SessionDep,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[TrialOut]:
    study = service.get_study(session, project, study_id)
    rows = service.trial_jobs(session, study.id)
    space = SearchSpace.model_validate(study.search_space)
    metrics = service.model_metrics_of(session, rows)
    page = rows[offset : offset + limit]
    return Page[TrialOut](
        items=[service.trial_out(job, study, space, metrics.get(job.id)) for job in page],
        total=len(rows),
        limit=limit,
        offset=offset,
    )


@router.post(
    "/{study_id}/cancel",
    status_code=202,
    operation_id="cancel_study",
    responses=error_responses(404),
)
def cancel_study(
    study_id: str, project: CurrentProject, session: SessionDep, events: EventsDep
) -> StudyOut:
    """Nothing more is queued; running trials stop at their next step."""
    was_running = service.get_study(session, project, study_id).status not in FINISHED
    study, cancelled_trials = service.cancel_study(session, project, study_id)

    def tell_watchers() -> None:
        # Queued trials end here, not on a worker: their watchers hear it from the API.
        for job_id in cancelled_trials:
            events.end(job_topic(job_id), JOB_CANCELLED)
        events.end(study_topic(study.id), study.status)

    if was_running:
        after_commit(session, tell_watchers)
    return service.study_out(session, study)


def watch_study(
    study_id: str,
    request: Request,
    project: CurrentProject,
    session: SessionDep,
    last_event_id: LastEventIdHeader = None,
) -> Watch:
    study = service.get_study(session, project, study_id)
    ended = study.status in FINISHED
    snapshot = service.study_snapshot(study)
    return open_watch(request, session, study_topic(study.id), snapshot, ended, last_event_id)


@router.get(
    "/{study_id}/events",
    operation_id="stream_study_events",
    response_class=EventSourceResponse,
    responses=stream_error_responses(404),
)
async def stream_study_events(
    watch: Annotated[Watch, Depends(watch_study)],
) -> AsyncIterable[ServerSentEvent]:
    """Server-Sent Events of the study: a `status` snapshot, then a `trial` event as each
    trial is queued or ends (number, job_id, state, value, params), and `status` and `end`
    when the study ends, after which the stream closes. `Last-Event-ID` resumes after that
    event; each trial's epochs stream at `GET /v1/jobs/{job_id}/events`."""
    async for event in server_sent_events(watch):
        yield event
