"""Jobs: check a spec against its dataset, queue it, show it, cancel it."""

from __future__ import annotations

from itertools import groupby

from sqlalchemy.orm import Session

from engine.spec import Spec
from service.auth.tables import Project
from service.core.database import new_id, utcnow
from service.core.deps import after_commit
from service.core.errors import found
from service.core.leases import FINISHED, QUEUED, RUNNING, request_cancel
from service.core.queue import TRAIN_JOB_TASK, JobQueue
from service.core.schemas import Page
from service.core.settings import Settings
from service.core.store import Store
from service.idempotency import service as idempotency
from service.jobs.repository import jobs
from service.jobs.schemas import EpochMetrics, JobError, JobMetricsOut, JobOut, Progress
from service.jobs.tables import Job
from service.specs.service import check_spec


def submit_job(
    session: Session,
    queue: JobQueue,
    store: Store,
    settings: Settings,
    project: Project,
    dataset_id: str,
    spec: Spec,
    idempotency_key: str | None = None,
) -> tuple[Job, bool]:
    """Check the spec against the dataset as `POST /v1/specs/validate` does, then queue it:
    the job and True; or the job this project's `idempotency_key` created before and False."""
    earlier = idempotency.earlier_resource(session, project.id, idempotency.JOB, idempotency_key)
    if earlier is not None:
        return get_job(session, project, earlier), False
    dataset, resolved, _ = check_spec(session, store, settings, project, dataset_id, spec)
    job_id = new_id("job")
    winner = idempotency.claim(session, project.id, idempotency.JOB, idempotency_key, job_id)
    if winner is not None:
        return get_job(session, project, winner), False
    job = jobs.add(
        session,
        Job(
            id=job_id,
            project_id=project.id,
            dataset_id=dataset.id,
            spec=spec.model_dump(mode="json"),
            resolved_spec=resolved.model_dump(mode="json"),
            status=QUEUED,
            queue=queue_for(spec, settings),
            # Sent right after the commit; the reconciler sends it again if it is lost.
            enqueued_at=utcnow(),
        ),
    )
    after_commit(session, lambda: queue.enqueue(TRAIN_JOB_TASK, job.id, job.queue))
    return job, True


def queue_for(spec: Spec, settings: Settings) -> str:
    return "gpu" if spec.training.device == "cuda" else settings.default_queue


def get_job(session: Session, project: Project, job_id: str) -> Job:
    return found(jobs.get(session, project.id, job_id), jobs.noun, job_id)


def list_jobs(
    session: Session, project: Project, status: str | None, limit: int, offset: int
) -> Page[JobOut]:
    rows = jobs.list_page(session, project.id, status, limit, offset)
    return Page[JobOut](
        items=[job_out(j) for j in rows],
        total=jobs.count(session, project.id, status),
        limit=limit,
        offset=offset,
    )


def cancel_job(session: Session, project: Project, job_id: str) -> Job:
    """A queued job is cancelled at once; a running one stops at its next training step."""
    job = get_job(session, project, job_id)
    request_cancel(job, jobs.noun)
    session.flush()
    return job


def job_metrics(session: Session, project: Project, job_id: str) -> JobMetricsOut:
    job = get_job(session, project, job_id)
    history = jobs.metric_rows(session, job.id)
    epochs = [
        EpochMetrics(epoch=epoch, values={r.name: r.value for r in group})
        for epoch, group in groupby(history, key=lambda r: r.epoch)
    ]
    return JobMetricsOut(job_id=job.id, epochs=epochs, warnings=job.warnings or [])


def job_out(job: Job) -> JobOut:
    error = (
        JobError(code=job.error_code, message=job.error_message or "") if job.error_code else None
    )
    progress = Progress(**job.progress) if job.progress else None
    if progress is not None and job.status in FINISHED:
        progress.eta_seconds = None
    if progress is None and job.status == RUNNING:
        progress = Progress(epoch=0, epochs=job.spec.get("training", {}).get("epochs", 0))
    return JobOut(
        id=job.id,
        dataset_id=job.dataset_id,
        status=job.status,
        queue=job.queue,
        attempts=job.attempts,
        cancel_requested=job.cancel_requested,
        progress=progress,
        metrics=job.metrics,
        warnings=job.warnings or [],
        model_id=job.model_id,
        report=job.report,
        error=error,
        spec=job.spec,
        study_id=job.study_id,
        trial_number=job.trial_number,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
    )
