"""The worker's side of a job: claim, lease, fencing, cancel, hand-back on shutdown."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta

from sqlalchemy import update

from engine.training import preparation
from engine.training.checkpoint import checkpoint_from_bytes
from service.core.database import create_session_factory, transaction, utcnow
from service.core.store import Store
from service.jobs.repository import jobs
from service.jobs.tables import Job, checkpoint_key
from service.jobs.training_run import run_training_job
from tests.conftest import Api, Backend
from tests.sample_data import csv_bytes, mixed_classification
from tests.service.conftest import worker_resources


def sessions(backend: Backend):
    return create_session_factory(backend.app.state.db_engine)


def test_a_second_claim_of_a_running_job_gets_nothing(backend: Backend, dataset_id, submit):
    job = submit(dataset_id)
    with transaction(sessions(backend)) as session:
        first = jobs.claim(session, job["id"], "worker-a", 60)
    with transaction(sessions(backend)) as session:
        second = jobs.claim(session, job["id"], "worker-b", 60)
    assert first is not None
    assert second is None


def test_a_lapsed_lease_can_be_claimed_and_fences_off_the_old_holder(
    backend: Backend, dataset_id, submit
):
    job = submit(dataset_id)
    factory = sessions(backend)
    with transaction(factory) as session:
        old = jobs.claim(session, job["id"], "worker-a", 60)
        session.execute(
            update(Job)
            .where(Job.id == job["id"])
            .values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )
    with transaction(factory) as session:
        new = jobs.claim(session, job["id"], "worker-b", 60)
    assert new is not None and new != old
    with transaction(factory) as session:
        assert not jobs.renew(session, job["id"], old, 60)
        assert not jobs.record_epochs(
            session, job["id"], old, [(1, {"val_loss": 1.0})], {"progress": {}}
        )
        assert not jobs.finish(session, job["id"], old, "succeeded")
        assert jobs.renew(session, job["id"], new, 60)
        stored = jobs.get_any(session, job["id"])
        assert (stored.status, stored.worker_id, stored.attempts) == ("running", "worker-b", 2)


def test_a_duplicate_delivery_after_success_does_nothing(api: Api, dataset_id, submit, run_job):
    job = submit(dataset_id, training={"epochs": 3})
    assert run_job(job["id"]) == "succeeded"
    first = api.get(f"/v1/jobs/{job['id']}").json()
    assert run_job(job["id"]) == "skipped"
    again = api.get(f"/v1/jobs/{job['id']}").json()
    assert again["model_id"] == first["model_id"]
    assert again["attempts"] == 1
    assert len(api.get("/v1/models").json()["items"]) == 1


def test_a_succeeded_job_leaves_a_complete_model_folder(
    backend: Backend, api: Api, dataset_id, submit, run_job
):
    job = submit(dataset_id, training={"epochs": 3})
    run_job(job["id"])
    model_id = api.get(f"/v1/jobs/{job['id']}").json()["model_id"]
    store: Store = backend.app.state.store
    for name in ("spec.json", "weights.safetensors", "preprocess.json", "metrics.json"):
        assert store.exists(f"models/{model_id}/{name}"), name


def _big_job(api: Api, submit) -> str:
    # Enough rows and epochs that training is still running when the test intervenes.
    upload = api.upload(csv_bytes(mixed_classification(n=4000)), "big.csv")
    spec = {"training": {"epochs": 400, "batch_size": 1, "early_stopping": None}}
    return submit(upload.json()["id"], **spec)["id"]


def _run_in_thread(resources, job_id: str) -> tuple[threading.Thread, dict]:
    outcome: dict = {}
    thread = threading.Thread(
        target=lambda: outcome.setdefault("result", run_training_job(resources, job_id))
    )
    thread.start()
    return thread, outcome


def _wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


def test_cancelling_a_running_job_stops_it_and_marks_it_cancelled(
    backend: Backend, api: Api, submit
):
    job_id = _big_job(api, submit)
    thread, outcome = _run_in_thread(worker_resources(backend), job_id)
    _wait_for(lambda: api.get(f"/v1/jobs/{job_id}").json()["status"] == "running")
    response = api.post(f"/v1/jobs/{job_id}/cancel")
    assert response.status_code == 202
    assert response.json()["cancel_requested"] is True
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert outcome["result"] == "cancelled"
    job = api.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "cancelled"
    assert job["model_id"] is None


def test_a_worker_shutting_down_hands_its_job_back_to_the_queue(backend: Backend, api: Api, submit):
    resources = worker_resources(backend)
    job_id = _big_job(api, submit)
    thread, outcome = _run_in_thread(resources, job_id)
    _wait_for(lambda: api.get(f"/v1/jobs/{job_id}").json()["status"] == "running")
    resources.shutdown.set()
    thread.join(timeout=30)
    assert outcome["result"] == "released"
    job = api.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "queued"
    assert job["error"] is None


def test_many_short_epochs_are_written_in_a_few_batches_with_every_epoch_kept(
    api: Api, submit, run_job, monkeypatch
):
    upload = api.upload(csv_bytes(mixed_classification(n=60)), "tiny.csv")
    job = submit(
        upload.json()["id"],
        training={"epochs": 300, "batch_size": "full", "early_stopping": None},
    )
    writes: list[list[int]] = []
    record_epochs = jobs.record_epochs

    def counted(session, job_id, token, history, latest):
        writes.append([epoch for epoch, _ in history])
        return record_epochs(session, job_id, token, history, latest)

    monkeypatch.setattr(jobs, "record_epochs", counted)
    assert run_job(job["id"]) == "succeeded"
    # One write a second at most (and the first epoch's at once), not one an epoch.
    assert len(writes) < 30, [len(w) for w in writes]
    assert writes[0] == [1]
    assert [epoch for batch in writes for epoch in batch] == list(range(1, 301))
    history = api.get(f"/v1/jobs/{job['id']}/metrics").json()["epochs"]
    assert [e["epoch"] for e in history] == list(range(1, 301))
    finished = api.get(f"/v1/jobs/{job['id']}").json()
    assert finished["progress"]["epoch"] == 300


def test_a_checkpoint_is_written_only_once_the_history_before_it_is(
    backend: Backend, api: Api, dataset_id, submit, monkeypatch
):
    resources = worker_resources(backend)
    resources.settings = backend.settings.model_copy(update={"checkpoint_interval_seconds": 0})
    job = submit(dataset_id, training={"epochs": 6, "early_stopping": None})
    store: Store = backend.app.state.store
    write_bytes = store.write_bytes
    seen: list[tuple[int, int]] = []

    def checked(key: str, content: bytes) -> None:
        if key == checkpoint_key(job["id"]):
            with transaction(sessions(backend)) as session:
                recorded = max(row.epoch for row in jobs.metric_rows(session, job["id"]))
            seen.append((checkpoint_from_bytes(content).epoch, recorded))
        write_bytes(key, content)

    monkeypatch.setattr(store, "write_bytes", checked)
    assert run_training_job(resources, job["id"]) == "succeeded"
    assert seen == [(epoch, epoch) for epoch in range(1, 7)]


def test_the_worker_trains_the_spec_as_resolved_at_submit(
    backend: Backend, api: Api, dataset_id, submit, run_job, monkeypatch
):
    job = submit(dataset_id, training={"epochs": 2})
    assert "model" not in job["spec"] or job["spec"]["model"] is None
    with transaction(sessions(backend)) as session:
        resolved = jobs.get_any(session, job["id"]).resolved_spec
    assert resolved["model"]["family"] == "mlp"

    def resolved_again(*args, **kwargs):
        raise AssertionError("the worker chose a default model again")

    monkeypatch.setattr(preparation, "default_model_config", resolved_again)
    assert run_job(job["id"]) == "succeeded"
    model_id = api.get(f"/v1/jobs/{job['id']}").json()["model_id"]
    store: Store = backend.app.state.store
    saved = json.loads(store.read_bytes(f"models/{model_id}/spec.json"))
    assert saved["model"] == resolved["model"]


def test_epochs_recorded_again_after_a_resume_replace_the_lost_attempts_rows(
    backend: Backend, dataset_id, submit
):
    """A worker killed after recording epochs past its last checkpoint: the resumed attempt
    records from the checkpoint on, and no row of the dead attempt survives beside it."""
    job = submit(dataset_id)
    with transaction(sessions(backend)) as session:
        token = jobs.claim(session, job["id"], "worker-a", 60)
        dead = [(epoch, {"val_loss": 10.0 + epoch}) for epoch in range(1, 6)]
        assert jobs.record_epochs(session, job["id"], token, dead, {"progress": {}})
    with transaction(sessions(backend)) as session:
        again = [(3, {"val_loss": 0.5})]
        assert jobs.record_epochs(session, job["id"], token, again, {"progress": {}})
        rows = [(r.epoch, r.name, r.value) for r in jobs.metric_rows(session, job["id"])]
    assert rows == [(1, "val_loss", 11.0), (2, "val_loss", 12.0), (3, "val_loss", 0.5)]
