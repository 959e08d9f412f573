"""Cancelling a job a real worker is training: it stops at a step boundary within about a
second (the lease keeper's poll), shows `cancelled`, and the worker takes the next job."""

from __future__ import annotations

import time

import pytest

from service.core.leased_run import LeaseKeeper
from tests.reliability.jobs import submit_slow_job, wait_for_epoch
from tests.reliability.servers import running_service

pytestmark = pytest.mark.reliability
KEY = "ty_rel_" + "c" * 24


def test_a_running_job_stops_soon_after_cancel_and_its_worker_takes_the_next_job(
    tmp_path,
) -> None:
    with (
        running_service(tmp_path, KEY, lease_seconds="6") as service,
        service.client() as client,
    ):
        service.worker()
        dataset, job = submit_slow_job(client, epochs=200)
        wait_for_epoch(client, job["id"], 1, timeout=60)
        asked = client.cancel_job(job["id"])
        cancelled_at = time.monotonic()
        while (current := client.get_job(job["id"]))["status"] == "running":
            assert time.monotonic() - cancelled_at < 30, "the job never stopped"
            time.sleep(0.02)
        stopped_after = time.monotonic() - cancelled_at
        history = client.job_metrics(job["id"])["epochs"]

        next_job = client.create_job(
            dataset["id"],
            {"task": "classification", "target": "label", "training": {"epochs": 1}},
        )
        after = client.wait_for_job(next_job["id"], timeout=60)
    print(f"stopped {stopped_after:.2f} s after the cancel request")
    assert asked["cancel_requested"] is True
    assert current["status"] == "cancelled"
    assert current["error"] is None
    # The keeper polls for cancels every CANCEL_POLL_SECONDS; a step takes milliseconds.
    assert stopped_after < LeaseKeeper.CANCEL_POLL_SECONDS + 2
    # It stopped mid-epoch, long before its last: the epoch under way was never recorded.
    assert [e["epoch"] for e in history] == list(range(1, current["progress"]["epoch"] + 1))
    assert len(history) < 200
    assert after["status"] == "succeeded", after["error"]
    assert "'cancelled'" in (tmp_path / "worker.log").read_text()
