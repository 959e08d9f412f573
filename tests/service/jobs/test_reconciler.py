"""Jobs whose worker vanished (its lease lapsed) go back to the queue, up to an attempt limit."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from service.core.database import create_session_factory, transaction, utcnow
from service.jobs import repository
from service.jobs.reconciler import reconcile_lapsed_leases
from service.jobs.tables import Job
from tests.conftest import Api, Backend


def _claim_then_vanish(backend: Backend, job_id: str, attempts: int | None = None) -> None:
    factory = create_session_factory(backend.app.state.db_engine)
    with transaction(factory) as session:
        assert repository.claim_job(session, job_id, "worker-that-dies", 60)
        values = {"lease_expires_at": utcnow() - timedelta(seconds=1)}
        if attempts is not None:
            values["attempts"] = attempts
        session.execute(update(Job).where(Job.id == job_id).values(**values))


def _reconcile(backend: Backend):
    factory = create_session_factory(backend.app.state.db_engine)
    return reconcile_lapsed_leases(factory, backend.app.state.queue, backend.settings)


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
        assert repository.claim_job(session, job["id"], "worker-alive", 60)

    report = _reconcile(backend)

    assert job["id"] not in report.requeued + report.failed
    assert api.get(f"/v1/jobs/{job['id']}").json()["status"] == "running"
