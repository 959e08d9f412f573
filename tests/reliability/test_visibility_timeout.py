"""A job that runs longer than Redis's visibility timeout is redelivered to the other worker
while it still trains; the lease fences the duplicate off, so one worker trains it, once."""

from __future__ import annotations

import time

import pytest

from client import Client
from tests.e2e.fleet import free_port, service_env, stop, trainyard, wait_until_ready
from tests.reliability.jobs import submit_slow_job, wait_for_epoch
from tests.reliability.servers import redis_server

pytestmark = pytest.mark.reliability
KEY = "ty_rel_" + "v" * 24
EPOCHS = 60
VISIBILITY_TIMEOUT = 3


def test_a_job_longer_than_the_visibility_timeout_is_trained_by_one_worker_once(
    tmp_path,
) -> None:
    with redis_server(tmp_path / "redis.log") as redis:
        port = free_port()
        env = service_env(
            tmp_path / "data",
            port,
            KEY,
            broker_url=redis.url,
            broker_visibility_timeout=str(VISIBILITY_TIMEOUT),
            lease_seconds="6",
        )
        base_url = f"http://127.0.0.1:{port}"
        api = trainyard("api", env=env, log=tmp_path / "api.log")
        first = second = None
        try:
            wait_until_ready(base_url, [api])
            first = trainyard("worker", env=env, log=tmp_path / "first.log")
            with Client(base_url, KEY) as client:
                _, job = submit_slow_job(client, epochs=EPOCHS)
                wait_for_epoch(client, job["id"], 0, timeout=60)
                # Past the timeout the unacknowledged message is due again; the second worker
                # sweeps for such messages as it starts.
                time.sleep(VISIBILITY_TIMEOUT + 1)
                second = trainyard("worker", env=env, log=tmp_path / "second.log")
                deadline = time.monotonic() + 60
                while "not claimed" not in (tmp_path / "second.log").read_text():
                    assert time.monotonic() < deadline, "the message was never redelivered"
                    assert client.get_job(job["id"])["status"] == "running", "finished first"
                    time.sleep(0.2)
                finished = client.wait_for_job(job["id"], timeout=120)
                history = client.job_metrics(job["id"])["epochs"]
        finally:
            for proc in (first, second):
                if proc is not None:
                    stop(proc)
            stop(api)
    assert finished["status"] == "succeeded", finished["error"]
    assert finished["attempts"] == 1
    assert [e["epoch"] for e in history] == list(range(1, EPOCHS + 1))
    first_log = (tmp_path / "first.log").read_text()
    second_log = (tmp_path / "second.log").read_text()
    assert "succeeded" in first_log and "'succeeded'" in first_log
    assert "'skipped'" in second_log and "'succeeded'" not in second_log
