"""Jobs whose worker vanished (its lease lapsed) go back to the queue, up to an attempt limit."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import update

from service.core.database import create_session_factory, transaction, utcnow
from service.core.queue import TRAIN_JOB_TASK
from service.core.reconciler import reconcile_lapsed_leases, resend_lost_messages
from service.jobs.repository import jobs
from service.jobs.tables import Job
from tests.conftest import Api, Backend
from workers.work_kinds import WORK_KINDS


def _claim_then_vanish(backend: Backend, job_id: str, attempts: int | None = None) -> None:
    factory = create_session_factory(backend.app.state.db_engine)
    with transaction(factory) as session:
        assert jobs.claim(session, job_id, "worker-that-dies", 60)
        values = {"lease_expires_at": utcnow() - timedelta(seconds=1)}
        if attempts is not None:
            values["attempts"] = attempts
        session.execute(update(Job).where(Job.id == job_id).values(**values))


def _reconcile(backend: Backend):
    factory = create_session_factory(backend.app.state.db_engine)
    return reconcile_lapsed_leases(WORK_KINDS, factory, backend.app.state.queue, backend.settings)


def test_a_job_whose_lease_lapsed_is_queued_again_and_then_finishes(
    backend: Backend, api: Api, dataset_id, submit, run_job
) -> None:
    job = submit(dataset_id, training={"epochs": 3})
    _claim_then_vanish(backend, job["id"])

    report = _reconcile(backend)

    assert job["id"] in report.requeued
    assert api.get(f"/v1/jobs/{job['id']}").json()["status"] == "queued"
    assert run_job(job["id"]) == "succeeded"
    finished = api.get(f"/v1/jobs/{job['id']}").json()
    assert finished["attempts"] == 2


def test_a_job_that_lost_its_worker_too_often_fails_with_a_clear_error(
    backend: Backend, api: Api, dataset_id, submit
) -> None:
    job = submit(dataset_id)
    _claim_then_vanish(backend, job["id"], attempts=backend.settings.max_attempts)

    report = _reconcile(backend)

    assert job["id"] in report.failed
    failed = api.get(f"/v1/jobs/{job['id']}").json()
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "worker_lost"
    assert str(backend.settings.max_attempts) in failed["error"]["message"]


def test_a_job_with_a_live_lease_is_left_alone(
    backend: Backend, api: Api, dataset_id, submit
) -> None:
    job = submit(dataset_id)
    factory = create_session_factory(backend.app.state.db_engine)
    with transaction(factory) as session:
        assert jobs.claim(session, job["id"], "worker-alive", 60)

    report = _reconcile(backend)

    assert job["id"] not in report.requeued + report.failed
    assert api.get(f"/v1/jobs/{job['id']}").json()["status"] == "running"


# --- queued jobs whose message was lost -------------------------------------------------------


def _sent_long_ago(backend: Backend, job_id: str, queue: str) -> None:
    """The job was last sent to its own queue (empty: no other test's messages) long ago."""
    factory = create_session_factory(backend.app.state.db_engine)
    with transaction(factory) as session:
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(queue=queue, enqueued_at=utcnow() - timedelta(hours=1))
        )


def _purge(backend: Backend, queue: str) -> None:
    with backend.app.state.queue.celery.connection_for_write() as connection:
        connection.default_channel.queue_purge(queue)


def test_a_queued_job_whose_message_was_lost_is_sent_again_once(
    backend: Backend, dataset_id, submit
) -> None:
    job = submit(dataset_id)
    queue = f"lost-{uuid.uuid4().hex[:8]}"
    _sent_long_ago(backend, job["id"], queue)
    factory = create_session_factory(backend.app.state.db_engine)

    resent = resend_lost_messages(WORK_KINDS, factory, backend.app.state.queue, backend.settings)
    again = resend_lost_messages(WORK_KINDS, factory, backend.app.state.queue, backend.settings)

    assert job["id"] in resent
    assert backend.app.state.queue.pending(queue) == 1
    # Stamped as sent: not sent again before requeue_after_seconds.
    assert job["id"] not in again
    _purge(backend, queue)


def test_a_queued_job_whose_message_is_still_waiting_is_not_sent_again(
    backend: Backend, dataset_id, submit
) -> None:
    job = submit(dataset_id)
    queue = f"busy-{uuid.uuid4().hex[:8]}"
    _sent_long_ago(backend, job["id"], queue)
    backend.app.state.queue.enqueue(TRAIN_JOB_TASK, job["id"], queue)
    factory = create_session_factory(backend.app.state.db_engine)

    resent = resend_lost_messages(WORK_KINDS, factory, backend.app.state.queue, backend.settings)

    assert job["id"] not in resent
    assert backend.app.state.queue.pending(queue) == 1
    _purge(backend, queue)


def test_a_recently_queued_job_is_not_sent_again(backend: Backend, dataset_id, submit) -> None:
    job = submit(dataset_id)
    factory = create_session_factory(backend.app.state.db_engine)
    _purge(backend, backend.settings.default_queue)

    resent = resend_lost_messages(WORK_KINDS, factory, backend.app.state.queue, backend.settings)

    assert job["id"] not in resent
