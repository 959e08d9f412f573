from __future__ import annotations

from fastapi import APIRouter

from engine.search.space import SearchSpace
from service.auth.dependencies import CurrentProject
from service.core.deps import QueueDep, SessionDep, SettingsDep, StoreDep, after_commit
from service.core.params import Limit, Offset
from service.core.queue import TRAIN_JOB_TASK
from service.core.schemas import Page, error_responses
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
) -> StudyOut:
    """Start a hyperparameter search: every corner of the space is checked against the spec
    rules and the dataset, then the first `parallel_trials` trials are queued as jobs."""
    study, trials = service.create_study(session, store, settings, project, body)
    for job in trials:
        after_commit(session, lambda job=job: queue.enqueue(TRAIN_JOB_TASK, job.id, job.queue))
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
def cancel_study(study_id: str, project: CurrentProject, session: SessionDep) -> StudyOut:
    """Nothing more is queued; running trials stop at their next step."""
    return service.study_out(session, service.cancel_study(session, project, study_id))
