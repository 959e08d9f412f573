"""A worker told to stop (SIGTERM, as on a deploy) hands its running job back to the queue."""

from __future__ import annotations

import pytest

from tests.e2e.fleet import stop
from tests.reliability.jobs import submit_slow_job, wait_for_epoch
from tests.reliability.servers import running_service

pytestmark = pytest.mark.reliability
KEY = "ty_e2e_" + "w" * 24


def test_sigterm_hands_the_running_job_back_and_a_new_worker_finishes_it(tmp_path) -> None:
    with (
        running_service(tmp_path, KEY, lease_seconds="6") as service,
        service.client() as client,
    ):
        worker = service.worker("worker1")
        _, job = submit_slow_job(client, epochs=6, rows=1000)
        current = wait_for_epoch(client, job["id"], 0, timeout=60)
        assert current["status"] == "running"

        assert stop(worker, timeout=30) == 0
        handed_back = client.get_job(job["id"])
        assert handed_back["status"] == "queued"
        assert handed_back["error"] is None

        service.worker("worker2")
        finished = client.wait_for_job(job["id"], timeout=240)
    assert finished["status"] == "succeeded", finished["error"]
    assert finished["attempts"] == 2
