"""What the reconciler tests of jobs and of batch predictions share: rows put straight into the
states the reconciler acts on (a worker that died, a message that was lost), which no API call
can make, and the reconciler's two sweeps, run once in this process."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from service.core.database import create_session_factory, transaction, utcnow
from service.core.reconciler import ReconcileReport, reconcile_lapsed_leases, resend_lost_messages
from tests.conftest import Backend
from workers.work_kinds import WORK_KINDS


def set_columns(backend: Backend, table, row_id: str, **values) -> None:
    with transaction(backend.app.state.session_factory) as session:
        session.execute(update(table).where(table.id == row_id).values(**values))


def claim_then_vanish(backend: Backend, repository, table, row_id: str, **values) -> None:
    """A worker claims the row through `repository` and dies: its lease lapsed a second ago.
    `values`: more columns to set with the lapse (attempts, progress...)."""
    with transaction(backend.app.state.session_factory) as session:
        assert repository.claim(session, row_id, "worker-that-dies", 60)
    set_columns(backend, table, row_id, lease_expires_at=utcnow() - timedelta(seconds=1), **values)


def sent_an_hour_ago(backend: Backend, table, row_id: str, queue: str) -> None:
    """Marked as sent to `queue` an hour ago: long enough that a missing message counts as
    lost."""
    set_columns(backend, table, row_id, queue=queue, enqueued_at=utcnow() - timedelta(hours=1))


def purge_queue(backend: Backend, queue: str) -> None:
    with backend.app.state.queue.celery.connection_for_write() as connection:
        connection.default_channel.queue_purge(queue)


def reconcile(backend: Backend) -> ReconcileReport:
    factory = create_session_factory(backend.app.state.db_engine)
    return reconcile_lapsed_leases(
        WORK_KINDS, factory, backend.app.state.queue, backend.settings, backend.app.state.events
    )


def resend(backend: Backend) -> list[str]:
    factory = create_session_factory(backend.app.state.db_engine)
    return resend_lost_messages(WORK_KINDS, factory, backend.app.state.queue, backend.settings)
