"""Job queries. Every write a worker makes is fenced by its lease token, so a worker that
lost its lease (it stalled, another took over) can no longer change the job."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, delete, func, select, update
from sqlalchemy.orm import Session

from service.core.database import utcnow
from service.core.leases import claim_row, held_by
from service.jobs.tables import QUEUED, Job, JobMetric


def get(session: Session, project_id: str, job_id: str) -> Job | None:
    return session.scalar(select(Job).where(Job.id == job_id, Job.project_id == project_id))


def get_any(session: Session, job_id: str) -> Job | None:
    return session.get(Job, job_id)


def list_page(
    session: Session, project_id: str, status: str | None, limit: int, offset: int
) -> Sequence[Job]:
    query = select(Job).where(Job.project_id == project_id)
    if status:
        query = query.where(Job.status == status)
    query = query.order_by(Job.created_at.desc(), Job.id).limit(limit).offset(offset)
    return session.scalars(query).all()


def count(session: Session, project_id: str, status: str | None) -> int:
    query = select(func.count()).select_from(Job).where(Job.project_id == project_id)
    if status:
        query = query.where(Job.status == status)
    return session.scalar(query)


def add(session: Session, job: Job) -> Job:
    session.add(job)
    session.flush()
    return job


def claim_job(session: Session, job_id: str, worker_id: str, lease_seconds: int) -> str | None:
    """Atomically take a queued job (or one whose lease lapsed); the new lease token, or
    None when another worker holds it or it is finished."""
    return claim_row(session, Job, job_id, worker_id, lease_seconds)


def _held(job_id: str, token: str) -> ColumnElement[bool]:
    return held_by(Job, job_id, token)


def renew_lease(session: Session, job_id: str, token: str, lease_seconds: int) -> bool:
    result = session.execute(
        update(Job)
        .where(_held(job_id, token))
        .values(lease_expires_at=utcnow() + timedelta(seconds=lease_seconds))
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def is_cancel_requested(session: Session, job_id: str) -> bool:
    return bool(session.scalar(select(Job.cancel_requested).where(Job.id == job_id)))


def record_epoch(
    session: Session,
    job_id: str,
    token: str,
    epoch: int,
    metrics: dict[str, float],
    progress: dict[str, Any],
    history: dict[str, float] | None = None,
    warnings: list[dict[str, Any]] | None = None,
) -> bool:
    """The job's latest metrics and progress, and one history row per name for this epoch
    (`history` defaults to `metrics`; it may carry more, such as gradient norms)."""
    values: dict[str, Any] = {"progress": progress, "metrics": metrics}
    if warnings is not None:
        values["warnings"] = warnings
    result = session.execute(
        update(Job)
        .where(_held(job_id, token))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        return False
    session.execute(delete(JobMetric).where(JobMetric.job_id == job_id, JobMetric.epoch == epoch))
    session.add_all(
        JobMetric(job_id=job_id, epoch=epoch, name=name, value=value)
        for name, value in (history if history is not None else metrics).items()
    )
    session.flush()
    return True


def finish_job(
    session: Session,
    job_id: str,
    token: str,
    status: str,
    *,
    error_code: str | None = None,
    error_message: str | None = None,
    model_id: str | None = None,
    report: dict[str, Any] | None = None,
) -> bool:
    result = session.execute(
        update(Job)
        .where(_held(job_id, token))
        .values(
            status=status,
            error_code=error_code,
            error_message=error_message,
            model_id=model_id,
            report=report,
            finished_at=utcnow(),
            lease_token=None,
            lease_expires_at=None,
        )
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def record_progress(session: Session, job_id: str, token: str, progress: dict[str, Any]) -> bool:
    """Progress with no epoch to record (a cross-validation fold finished)."""
    result = session.execute(
        update(Job)
        .where(_held(job_id, token))
        .values(progress=progress)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def release_job(session: Session, job_id: str, token: str) -> bool:
    """Hand a running job back to the queue (its worker is shutting down)."""
    result = session.execute(
        update(Job)
        .where(_held(job_id, token))
        .values(
            status=QUEUED,
            worker_id=None,
            lease_token=None,
            lease_expires_at=None,
            enqueued_at=utcnow(),
        )
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def metric_rows(session: Session, job_id: str) -> Sequence[JobMetric]:
    query = select(JobMetric).where(JobMetric.job_id == job_id)
    return session.scalars(query.order_by(JobMetric.epoch, JobMetric.name)).all()
