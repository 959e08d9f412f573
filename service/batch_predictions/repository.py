"""Batch prediction queries. A worker's writes are fenced by its lease token, as for jobs."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.orm import Session

from service.batch_predictions.tables import BatchPrediction
from service.core.database import utcnow
from service.core.leases import claim_row, held_by


def get(session: Session, project_id: str, batch_id: str) -> BatchPrediction | None:
    return session.scalar(
        select(BatchPrediction).where(
            BatchPrediction.id == batch_id, BatchPrediction.project_id == project_id
        )
    )


def get_any(session: Session, batch_id: str) -> BatchPrediction | None:
    return session.get(BatchPrediction, batch_id)


def list_page(
    session: Session, project_id: str, status: str | None, limit: int, offset: int
) -> Sequence[BatchPrediction]:
    query = select(BatchPrediction).where(BatchPrediction.project_id == project_id)
    if status:
        query = query.where(BatchPrediction.status == status)
    query = query.order_by(BatchPrediction.created_at.desc(), BatchPrediction.id)
    return session.scalars(query.limit(limit).offset(offset)).all()


def count(session: Session, project_id: str, status: str | None) -> int:
    query = (
        select(func.count())
        .select_from(BatchPrediction)
        .where(BatchPrediction.project_id == project_id)
    )
    if status:
        query = query.where(BatchPrediction.status == status)
    return session.scalar(query)


def add(session: Session, batch: BatchPrediction) -> BatchPrediction:
    session.add(batch)
    session.flush()
    return batch


def claim(session: Session, batch_id: str, worker_id: str, lease_seconds: int) -> str | None:
    """Atomically take a queued batch prediction (or one whose lease lapsed): the new lease
    token, or None when another worker holds it or it is finished."""
    return claim_row(session, BatchPrediction, batch_id, worker_id, lease_seconds)


def _held(batch_id: str, token: str) -> ColumnElement[bool]:
    return held_by(BatchPrediction, batch_id, token)


def record_progress(
    session: Session, batch_id: str, token: str, progress: dict[str, Any], lease_seconds: int
) -> bool:
    """Progress after a chunk, renewing the lease; False if the lease is lost or a cancel
    was asked for (the worker stops)."""
    result = session.execute(
        update(BatchPrediction)
        .where(_held(batch_id, token), BatchPrediction.cancel_requested.is_(False))
        .values(progress=progress, lease_expires_at=utcnow() + timedelta(seconds=lease_seconds))
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def finish(
    session: Session,
    batch_id: str,
    token: str,
    status: str,
    *,
    progress: dict[str, Any] | None = None,
    result_key: str | None = None,
    error_code: str | None = None,
    error_message: str | None = None,
) -> bool:
    values: dict[str, Any] = {
        "status": status,
        "result_key": result_key,
        "error_code": error_code,
        "error_message": error_message,
        "finished_at": utcnow(),
        "lease_token": None,
        "lease_expires_at": None,
    }
    if progress is not None:
        values["progress"] = progress
    result = session.execute(
        update(BatchPrediction)
        .where(_held(batch_id, token))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def is_cancel_requested(session: Session, batch_id: str) -> bool:
    return bool(
        session.scalar(
            select(BatchPrediction.cancel_requested).where(BatchPrediction.id == batch_id)
        )
    )
