"""Leases on work rows (training jobs, batch predictions): one worker at a time holds a row,
proven by a token, until the lease lapses.

A leased table has the columns `id`, `status`, `cancel_requested`, `worker_id`,
`lease_token`, `lease_expires_at`, `attempts` and `started_at`.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, or_, update
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
