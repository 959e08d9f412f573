"""Leases on work rows (training jobs, batch predictions): one worker at a time holds a row,
proven by a token, until the lease lapses; and the queries the reconciler needs to take back
rows whose worker vanished or whose broker message was lost.

A leased table has the columns `id`, `status`, `queue`, `cancel_requested`, `worker_id`,
`lease_token`, `lease_expires_at`, `attempts`, `enqueued_at`, `created_at` and `started_at`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.orm import Session

from service.core.database import utcnow

QUEUED, RUNNING = "queued", "running"


def claim_row(
    session: Session, table: Any, row_id: str, worker_id: str, lease_seconds: int
) -> str | None:
    """Atomically take a queued row (or one whose lease lapsed): the new lease token, or None
    when another worker holds it, it was cancelled or it is finished."""
    now = utcnow()
    token = uuid.uuid4().hex
    result = session.execute(
        update(table)
        .where(
            table.id == row_id,
            table.cancel_requested.is_(False),
            or_(
                table.status == QUEUED,
                (table.status == RUNNING) & (table.lease_expires_at < now),
            ),
        )
        .values(
            status=RUNNING,
            worker_id=worker_id,
            lease_token=token,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            attempts=table.attempts + 1,
            started_at=func.coalesce(table.started_at, now),
        )
        .execution_options(synchronize_session=False)
    )
    return token if result.rowcount == 1 else None


def held_by(table: Any, row_id: str, token: str) -> ColumnElement[bool]:
    """The fence on every write a lease holder makes: the row is still running under `token`."""
    return (table.id == row_id) & (table.lease_token == token) & (table.status == RUNNING)


def lapsed_rows(session: Session, table: Any, limit: int = 100) -> Sequence[Any]:
    """Running rows whose worker stopped renewing its lease (killed, or its machine lost)."""
    query = select(table).where(table.status == RUNNING, table.lease_expires_at < utcnow())
    return session.scalars(query.order_by(table.lease_expires_at).limit(limit)).all()


def take_back_lapsed(session: Session, table: Any, row_id: str, status: str, **values: Any) -> bool:
    """Move a row off a lapsed lease (to `queued` again, or `failed`); False if its worker
    renewed the lease meanwhile or someone else got there first."""
    result = session.execute(
        update(table)
        .where(table.id == row_id, table.status == RUNNING, table.lease_expires_at < utcnow())
        .values(status=status, worker_id=None, lease_token=None, lease_expires_at=None, **values)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def _sent_at(table: Any) -> ColumnElement[datetime]:
    # Rows from before `enqueued_at` existed count as sent when created.
    return func.coalesce(table.enqueued_at, table.created_at)


def unsent_since(session: Session, table: Any, before: datetime, limit: int = 500) -> Sequence[Any]:
    """Queued rows last sent to the broker before `before`, oldest first: their message may be
    lost."""
    sent_at = _sent_at(table)
    query = select(table).where(table.status == QUEUED, sent_at < before)
    return session.scalars(query.order_by(sent_at).limit(limit)).all()


def count_queued(session: Session, table: Any, queue: str) -> int:
    query = (
        select(func.count()).select_from(table).where(table.status == QUEUED, table.queue == queue)
    )
    return session.scalar(query)


def mark_resent(session: Session, table: Any, row_id: str, before: datetime) -> bool:
    """Stamp a queued row as sent now, unless someone did since `before` (another worker's
    reconciler): only the one that stamped it sends the message."""
    result = session.execute(
        update(table)
        .where(table.id == row_id, table.status == QUEUED, _sent_at(table) < before)
        .values(enqueued_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1
