"""A worker told to stop (SIGTERM, as on a deploy) hands its running job back to the queue."""

from __future__ import annotations

import time

import pytest

from client import Client
from tests.e2e.fleet import free_port, service_env, stop, trainyard, wait_until_ready
from tests.sample_data import csv_bytes, mixed_classification

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
            dataset = client.upload_dataset(csv_bytes(mixed_classification(n=1000)), "m.csv")
            spec = {
                "task": "classification",
                "target": "label",
                "training": {"epochs": 6, "batch_size": 1, "early_stopping": None},
            }
            job = client.create_job(dataset["id"], spec)
            deadline = time.monotonic() + 60
            while (current := client.get_job(job["id"]))["progress"] is None:
                assert time.monotonic() < deadline, "the job never started"
                time.sleep(0.1)
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
