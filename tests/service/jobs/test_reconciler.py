"""Jobs whose worker vanished (its lease lapsed) go back to the queue, up to an attempt limit."""

from __future__ import annotations

from service.core.database import transaction
from service.core.queue import TRAIN_JOB_TASK
from service.jobs.repository import jobs
from service.jobs.tables import Job
from tests.conftest import Api, Backend
from tests.service.leases import (
    claim_then_vanish,
    purge_queue,
    reconcile,
    resend,
    sent_an_hour_ago,
)


def test_a_job_whose_lease_lapsed_is_queued_again_and_then_finishes(
    backend: Backend, api: Api, dataset_id, submit, run_job
) -> None:
    job = submit(dataset_id, training={"epochs": 3})
    claim_then_vanish(backend, jobs, Job, job["id"])

    report = reconcile(backend)

    assert job["id"] in report.requeued
    assert api.get(f"/v1/jobs/{job['id']}").json()["status"] == "queued"
    assert run_job(job["id"]) == "succeeded"
    finished = api.get(f"/v1/jobs/{job['id']}").json()
    assert finished["attempts"] == 2


def test_a_job_that_lost_its_worker_too_often_fails_with_a_clear_error(
    backend: Backend, api: Api, dataset_id, submit
) -> None:
    job = submit(dataset_id)
    claim_then_vanish(backend, jobs, Job, job["id"], attempts=backend.settings.max_attempts)

    report = reconcile(backend)

    assert job["id"] in report.failed
    failed = api.get(f"/v1/jobs/{job['id']}").json()
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "worker_lost"
    assert str(backend.settings.max_attempts) in failed["error"]["message"]


def test_a_job_with_a_live_lease_is_left_alone(
    backend: Backend, api: Api, dataset_id, submit
) -> None:
    job = submit(dataset_id)
    with transaction(backend.app.state.session_factory) as session:
        assert jobs.claim(session, job["id"], "worker-alive", 60)

    report = reconcile(backend)

    assert job["id"] not in report.requeued + report.failed
    assert api.get(f"/v1/jobs/{job['id']}").json()["status"] == "running"


# --- queued jobs whose message was lost -------------------------------------------------------


def test_a_queued_job_whose_message_was_lost_is_sent_again_once(
    backend: Backend, dataset_id, submit, own_queue: str
) -> None:
    job = submit(dataset_id)
    sent_an_hour_ago(backend, Job, job["id"], own_queue)

    resent = resend(backend)
    again = resend(backend)

    assert job["id"] in resent
    assert backend.app.state.queue.pending(own_queue) == 1
    # Stamped as sent: not sent again before requeue_after_seconds.
    assert job["id"] not in again


def test_a_queued_job_whose_message_is_still_waiting_is_not_sent_again(
    backend: Backend, dataset_id, submit, own_queue: str
) -> None:
    job = submit(dataset_id)
    sent_an_hour_ago(backend, Job, job["id"], own_queue)
    backend.app.state.queue.enqueue(TRAIN_JOB_TASK, job["id"], own_queue)

    resent = resend(backend)

    assert job["id"] not in resent
    assert backend.app.state.queue.pending(own_queue) == 1


def test_a_recently_queued_job_is_not_sent_again(backend: Backend, dataset_id, submit) -> None:
    job = submit(dataset_id)
    # Its message gone too: only its fresh enqueued_at keeps it from being sent again.
    purge_queue(backend, backend.settings.default_queue)

    resent = resend(backend)

    assert job["id"] not in resent
