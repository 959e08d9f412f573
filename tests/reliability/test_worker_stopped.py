"""A worker told to stop (SIGTERM, as on a deploy) hands its running job back to the queue."""

from __future__ import annotations

import pytest

from client import Client
from tests.e2e.fleet import free_port, service_env, stop, trainyard, wait_until_ready
from tests.reliability.jobs import submit_slow_job, wait_for_epoch

pytestmark = pytest.mark.reliability
KEY = "ty_e2e_" + "w" * 24


def test_sigterm_hands_the_running_job_back_and_a_new_worker_finishes_it(tmp_path) -> None:
    port = free_port()
    env = service_env(tmp_path / "data", port, KEY, lease_seconds="6")
    base_url = f"http://127.0.0.1:{port}"
    api = trainyard("api", env=env, log=tmp_path / "api.log")
    try:
        wait_until_ready(base_url, [api])
        worker = trainyard("worker", env=env, log=tmp_path / "worker1.log")
        with Client(base_url, KEY) as client:
            _, job = submit_slow_job(client, epochs=6, rows=1000)
            current = wait_for_epoch(client, job["id"], 0, timeout=60)
            assert current["status"] == "running"

            assert stop(worker, timeout=30) == 0
            handed_back = client.get_job(job["id"])
            assert handed_back["status"] == "queued"
            assert handed_back["error"] is None

            second = trainyard("worker", env=env, log=tmp_path / "worker2.log")
            try:
                finished = client.wait_for_job(job["id"], timeout=240)
            finally:
                stop(second)
        assert finished["status"] == "succeeded", finished["error"]
        assert finished["attempts"] == 2
    finally:
        stop(api)
