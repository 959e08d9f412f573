"""Leased work: rows a worker runs (training jobs, batch predictions, next study trials) and
the one kernel they share: their states, their lease columns, and the queries on them.

A worker claims a queued row with an atomic update and holds it by a lease token until the
lease lapses; it renews the lease while it works. Every write it makes is fenced by that
token, so a worker that lost its lease (it stalled, another took over) changes nothing, and a
duplicate delivery finds the row claimed and does nothing. The reconciler
(service/core/reconciler.py) takes back rows whose worker vanished or whose message was lost.

A domain's table mixes in `LeasedColumns` and adds what is its own; its repository subclasses
`LeasedWorkRepository` and adds its own queries.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Generic, Literal, TypeVar

from sqlalchemy import (
    JSON,
    Boolean,
    ColumnElement,
    ForeignKey,
    Integer,
    String,
    Text,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from service.core.database import UTCDateTime, utcnow
from service.core.errors import Conflict

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = (
    "queued",
    "running",
    "succeeded",
    "failed",
    "cancelled",
)
FINISHED = (SUCCEEDED, FAILED, CANCELLED)
WorkStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class LeasedColumns:
    """The columns every kind of leased work has: its state, its queue, the lease, and how it
    ended."""

    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True, default=QUEUED)
    queue: Mapped[str] = mapped_column(String(32))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # The lease: whoever holds lease_token may write progress and the outcome, until
    # lease_expires_at; a worker renews it while it works.
    worker_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    lease_token: Mapped[str | None] = mapped_column(String(40), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # When a message for the row was last sent: a queued row whose message is long gone (the
    # broker lost it) is sent again by the reconciler.
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    progress: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


Row = TypeVar("Row", bound=LeasedColumns)


def request_cancel(row: LeasedColumns, noun: str) -> None:
    """A queued row is cancelled at once; a running one is asked to stop, and its worker
    notices within a second. A finished one cannot be cancelled (409)."""
    if row.status in FINISHED:
        raise Conflict(
            f"{noun} {row.id!r} is already {row.status}; only queued or running ones can be "
            "cancelled",
            details={"status": row.status},
        )
    row.cancel_requested = True
    if row.status == QUEUED:
        row.status = CANCELLED


def status_snapshot(row: LeasedColumns) -> dict[str, Any]:
    """What a watcher of the row's events is told first: its state as the database has it."""
    snapshot: dict[str, Any] = {"status": row.status, "progress": row.progress}
    if row.error_code:
        snapshot["error"] = {"code": row.error_code, "message": row.error_message or ""}
    return snapshot


class LeasedWorkRepository(Generic[Row]):
    """The queries on one leased table: reads scoped to a project, and the lease's claim,
    renewal, fenced writes, release and end, and the reconciler's look-ups. Queries only
    flush; the caller's transaction commits."""

    def __init__(self, table: type[Row], noun: str) -> None:
        self.table = table
        # What a user calls a row, in errors: "job", "batch prediction".
        self.noun = noun

    # Reads and writes of the API.
    def get(self, session: Session, project_id: str, row_id: str) -> Row | None:
        table = self.table
        return session.scalar(
            select(table).where(table.id == row_id, table.project_id == project_id)
        )

    def get_any(self, session: Session, row_id: str) -> Row | None:
        return session.get(self.table, row_id)

    def list_page(
        self, session: Session, project_id: str, status: str | None, limit: int, offset: int
    ) -> Sequence[Row]:
        table = self.table
        query = select(table).where(table.project_id == project_id)
        if status:
            query = query.where(table.status == status)
        query = query.order_by(table.created_at.desc(), table.id).limit(limit).offset(offset)
        return session.scalars(query).all()

    def count(self, session: Session, project_id: str, status: str | None) -> int:
        table = self.table
        query = select(func.count()).select_from(table).where(table.project_id == project_id)
        if status:
            query = query.where(table.status == status)
        return session.scalar(query)

    def count_by_status(self, session: Session) -> dict[str, int]:
        """Rows per status over every project (the operator's `/metrics`), each status
        present, 0 where none is."""
        table = self.table
        rows = session.execute(select(table.status, func.count()).group_by(table.status))
        return {status: 0 for status in (QUEUED, RUNNING, *FINISHED)} | dict(rows.all())

    def add(self, session: Session, row: Row) -> Row:
        session.add(row)
        session.flush()
        return row

    # The lease.
    def claim(
        self, session: Session, row_id: str, worker_id: str, lease_seconds: int
    ) -> str | None:
        """Atomically take a queued row (or one whose lease lapsed): the new lease token, or
        None when another worker holds it, it was cancelled or it is finished."""
        table, now, token = self.table, utcnow(), uuid.uuid4().hex
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

    def held(self, row_id: str, token: str) -> ColumnElement[bool]:
        """The fence on every write a lease holder makes: the row still runs under `token`."""
        table = self.table
        return (table.id == row_id) & (table.lease_token == token) & (table.status == RUNNING)

    def write_held(self, session: Session, row_id: str, token: str, **values: Any) -> bool:
        """Set `values` on the row if `token` still holds it; False if the lease is lost."""
        result = session.execute(
            update(self.table)
            .where(self.held(row_id, token))
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return result.rowcount == 1

    def renew(self, session: Session, row_id: str, token: str, lease_seconds: int) -> bool:
        expires = utcnow() + timedelta(seconds=lease_seconds)
        return self.write_held(session, row_id, token, lease_expires_at=expires)

    def is_cancel_requested(self, session: Session, row_id: str) -> bool:
        table = self.table
        return bool(session.scalar(select(table.cancel_requested).where(table.id == row_id)))

    def finish(self, session: Session, row_id: str, token: str, status: str, **values: Any) -> bool:
        """End the run as `status` (with its outcome in `values`) and let go of the lease."""
        return self.write_held(
            session,
            row_id,
            token,
            status=status,
            finished_at=utcnow(),
            lease_token=None,
            lease_expires_at=None,
            **values,
        )

    def release(self, session: Session, row_id: str, token: str) -> bool:
        """Hand a running row back to the queue (its worker is shutting down)."""
        return self.write_held(
            session,
            row_id,
            token,
            status=QUEUED,
            worker_id=None,
            lease_token=None,
            lease_expires_at=None,
            enqueued_at=utcnow(),
        )

    # What the reconciler looks for.
    def lapsed(self, session: Session, limit: int = 100) -> Sequence[Row]:
        """Running rows whose worker stopped renewing its lease (killed, or its machine lost)."""
        table = self.table
        query = select(table).where(table.status == RUNNING, table.lease_expires_at < utcnow())
        return session.scalars(query.order_by(table.lease_expires_at).limit(limit)).all()

    def take_back_lapsed(self, session: Session, row_id: str, status: str, **values: Any) -> bool:
        """Move a row off a lapsed lease (to `queued` again, or `failed`); False if its worker
        renewed the lease meanwhile or someone else got there first."""
        table = self.table
        result = session.execute(
            update(table)
            .where(table.id == row_id, table.status == RUNNING, table.lease_expires_at < utcnow())
            .values(
                status=status, worker_id=None, lease_token=None, lease_expires_at=None, **values
            )
            .execution_options(synchronize_session=False)
        )
        return result.rowcount == 1

    def _sent_at(self) -> ColumnElement[datetime]:
        # Rows from before `enqueued_at` existed count as sent when created.
        return func.coalesce(self.table.enqueued_at, self.table.created_at)

    def unsent_since(self, session: Session, before: datetime, limit: int = 500) -> Sequence[Row]:
        """Queued rows last sent to the broker before `before`, oldest first: their message
        may be lost."""
        sent_at = self._sent_at()
        query = select(self.table).where(self.table.status == QUEUED, sent_at < before)
        return session.scalars(query.order_by(sent_at).limit(limit)).all()

    def count_queued(self, session: Session, queue: str) -> int:
        table = self.table
        query = (
            select(func.count())
            .select_from(table)
            .where(table.status == QUEUED, table.queue == queue)
        )
        return session.scalar(query)

    def mark_resent(self, session: Session, row_id: str, before: datetime) -> bool:
        """Stamp a queued row as sent now, unless someone did since `before` (another
        worker's reconciler): only the one that stamped it sends the message."""
        table = self.table
        result = session.execute(
            update(table)
            .where(table.id == row_id, table.status == QUEUED, self._sent_at() < before)
            .values(enqueued_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        return result.rowcount == 1
