"""A job that runs longer than Redis's visibility timeout is redelivered to the other worker
while it still trains; the lease fences the duplicate off, so one worker trains it, once.

The job is far longer than the test needs (it is cancelled once the duplicate was turned
away), so a slow worker start cannot let it finish before the redelivery arrives."""

from __future__ import annotations

import time

import pytest

from tests.reliability.jobs import submit_slow_job, wait_for_epoch
from tests.reliability.servers import redis_server, running_service

pytestmark = pytest.mark.reliability
KEY = "ty_rel_" + "v" * 24
EPOCHS = 1000  # the most a spec allows
VISIBILITY_TIMEOUT = 3


def test_a_job_longer_than_the_visibility_timeout_is_trained_by_one_worker_once(
    tmp_path,
) -> None:
    with (
        redis_server(tmp_path / "redis.log") as redis,
        running_service(
            tmp_path,
            KEY,
            broker_url=redis.url,
            broker_visibility_timeout=str(VISIBILITY_TIMEOUT),
            lease_seconds="6",
        ) as service,
        service.client() as client,
    ):
        service.worker("first")
        _, job = submit_slow_job(client, epochs=EPOCHS)
        wait_for_epoch(client, job["id"], 0, timeout=60)
        # Past the timeout the unacknowledged message is due again; the second worker sweeps
        # for such messages as it starts.
        time.sleep(VISIBILITY_TIMEOUT + 1)
        service.worker("second")
        deadline = time.monotonic() + 90
        while "not claimed" not in (tmp_path / "second.log").read_text():
            assert time.monotonic() < deadline, "the message was never redelivered"
            time.sleep(0.2)
        # The first worker still holds it and goes on training after the duplicate left.
        skipped_at = client.get_job(job["id"])["progress"]["epoch"]
        wait_for_epoch(client, job["id"], skipped_at + 2, timeout=60)
        client.cancel_job(job["id"])
        finished = client.wait_for_job(job["id"], timeout=60)
        history = client.job_metrics(job["id"])["epochs"]
    assert finished["status"] == "cancelled", finished["error"]
    assert finished["attempts"] == 1
    epochs = [e["epoch"] for e in history]
    assert epochs == list(range(1, len(epochs) + 1)) and len(epochs) > skipped_at
    first_log = (tmp_path / "first.log").read_text()
    second_log = (tmp_path / "second.log").read_text()
    assert "'cancelled'" in first_log
    assert "'skipped'" in second_log
    assert "'cancelled'" not in second_log and "'released'" not in second_log
