"""The reconciler looks after batch predictions as it does jobs: one whose worker vanished goes
back to the queue (or fails past the attempt limit), and one whose message was lost is sent
again."""

from __future__ import annotations

import io
from datetime import timedelta

import pyarrow.parquet as pq
import pytest

from service.batch_predictions.repository import batch_predictions
from service.batch_predictions.tables import BatchPrediction
from service.core.database import transaction, utcnow
from service.core.queue import BATCH_PREDICT_TASK, TRAIN_JOB_TASK
from service.jobs.tables import Job
from tests.conftest import Api, Backend
from tests.sample_data import csv_bytes, mixed_classification
from tests.service.leases import (
    claim_then_vanish,
    reconcile,
    resend,
    sent_an_hour_ago,
    set_columns,
)


@pytest.fixture
def batch(api: Api, trained_model_id: str) -> dict:
    """A queued batch prediction over 50 rows with an id column."""
    rows = {"id": [f"row-{i}" for i in range(50)], **mixed_classification(n=50, seed=5)}
    dataset = api.upload(csv_bytes(rows), "rows.csv")
    assert dataset.status_code == 201, dataset.text
    response = api.post(
        f"/v1/models/{trained_model_id}/batch-predictions",
        json={"dataset_id": dataset.json()["id"]},
    )
    assert response.status_code == 202, response.text
    return response.json()


def _claim_then_vanish(backend: Backend, batch_id: str, **values) -> None:
    """A worker claims the run, writes some progress, and dies: its lease lapses."""
    claim_then_vanish(
        backend,
        batch_predictions,
        BatchPrediction,
        batch_id,
        progress={"rows_done": 16, "rows_total": 50},
        **values,
    )


def test_a_batch_prediction_whose_worker_died_is_queued_again_and_then_finishes(
    backend: Backend, api: Api, batch: dict, own_queue: str, run_batch
) -> None:
    _claim_then_vanish(backend, batch["id"], queue=own_queue)

    report = reconcile(backend)

    assert batch["id"] in report.requeued
    requeued = api.get(f"/v1/batch-predictions/{batch['id']}").json()
    assert requeued["status"] == "queued"
    # Its wake-up message went to its queue, for the next worker to take.
    assert backend.app.state.queue.pending(own_queue) == 1

    assert run_batch(batch["id"]) == "succeeded"
    done = api.get(f"/v1/batch-predictions/{batch['id']}").json()
    assert done["attempts"] == 2
    assert done["progress"] == {"rows_done": 50, "rows_total": 50}
    # Started over, not appended to what the dead worker did: every row once, in order.
    result = pq.read_table(io.BytesIO(api.get(done["result_url"]).content))
    assert result.column("id").to_pylist() == [f"row-{i}" for i in range(50)]


def test_a_batch_prediction_that_lost_its_worker_too_often_fails_with_a_clear_error(
    backend: Backend, api: Api, batch: dict, run_batch
) -> None:
    _claim_then_vanish(backend, batch["id"], attempts=backend.settings.max_attempts)

    report = reconcile(backend)

    assert batch["id"] in report.failed
    failed = api.get(f"/v1/batch-predictions/{batch['id']}").json()
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "worker_lost"
    assert "batch prediction" in failed["error"]["message"]
    assert str(backend.settings.max_attempts) in failed["error"]["message"]
    assert failed["finished_at"] is not None
    assert run_batch(batch["id"]) == "skipped"
    assert api.get(f"/v1/batch-predictions/{batch['id']}/result").status_code == 409


def test_a_batch_prediction_with_a_live_lease_is_left_alone(
    backend: Backend, api: Api, batch: dict
) -> None:
    with transaction(backend.app.state.session_factory) as session:
        assert batch_predictions.claim(session, batch["id"], "worker-alive", 60)

    report = reconcile(backend)

    assert batch["id"] not in report.requeued + report.failed
    assert api.get(f"/v1/batch-predictions/{batch['id']}").json()["status"] == "running"


def test_a_queued_batch_prediction_whose_message_was_lost_is_sent_again_once(
    backend: Backend, batch: dict, own_queue: str
) -> None:
    sent_an_hour_ago(backend, BatchPrediction, batch["id"], own_queue)

    resent = resend(backend)
    again = resend(backend)

    assert batch["id"] in resent
    assert backend.app.state.queue.pending(own_queue) == 1
    # Stamped as sent: not sent again before requeue_after_seconds.
    assert batch["id"] not in again


def test_a_jobs_waiting_message_does_not_hide_a_lost_batch_message_in_the_same_queue(
    backend: Backend, batch: dict, dataset_id: str, submit, own_queue: str
) -> None:
    """Jobs and batch predictions share queues: one message waiting for a job is not the
    message of the batch prediction queued beside it."""
    job = submit(dataset_id)
    set_columns(backend, Job, job["id"], queue=own_queue, enqueued_at=utcnow())
    backend.app.state.queue.enqueue(TRAIN_JOB_TASK, job["id"], own_queue)
    sent_an_hour_ago(backend, BatchPrediction, batch["id"], own_queue)

    resent = resend(backend)

    assert batch["id"] in resent
    assert job["id"] not in resent
    assert backend.app.state.queue.pending(own_queue) == 2


def test_a_queued_batch_prediction_whose_message_is_still_waiting_is_not_sent_again(
    backend: Backend, batch: dict, own_queue: str
) -> None:
    sent_an_hour_ago(backend, BatchPrediction, batch["id"], own_queue)
    backend.app.state.queue.enqueue(BATCH_PREDICT_TASK, batch["id"], own_queue)

    resent = resend(backend)

    assert batch["id"] not in resent
    assert backend.app.state.queue.pending(own_queue) == 1


def test_a_submitted_batch_prediction_counts_as_sent_just_now(
    backend: Backend, batch: dict
) -> None:
    with transaction(backend.app.state.session_factory) as session:
        row = batch_predictions.get_any(session, batch["id"])
        assert row is not None and row.enqueued_at is not None
        assert utcnow() - row.enqueued_at < timedelta(minutes=1)
    assert batch["id"] not in resend(backend)
