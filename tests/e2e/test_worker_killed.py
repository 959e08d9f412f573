"""A worker killed mid-job (SIGKILL: no chance to hand it back): another worker takes the job
once its lease lapses and resumes it from the latest checkpoint."""

from __future__ import annotations

import re
import signal
import time

import pytest

from client import Client
from tests.e2e.fleet import free_port, service_env, stop, trainyard, wait_until_ready
from tests.sample_data import csv_bytes, mixed_classification

pytestmark = pytest.mark.e2e
KEY = "ty_e2e_" + "x" * 24
EPOCHS = 10


def test_a_killed_workers_job_resumes_on_another_worker_with_no_epoch_lost_or_repeated(
    tmp_path,
) -> None:
    port = free_port()
    env = service_env(tmp_path / "data", port, KEY, lease_seconds="4")
    base_url = f"http://127.0.0.1:{port}"
    api = trainyard("api", env=env, log=tmp_path / "api.log")
    try:
        wait_until_ready(base_url, [api])
        doomed = trainyard("worker", env=env, log=tmp_path / "worker1.log")
        with Client(base_url, KEY) as client:
            dataset = client.upload_dataset(csv_bytes(mixed_classification(n=800)), "m.csv")
            spec = {
                "task": "classification",
                "target": "label",
                "training": {"epochs": EPOCHS, "batch_size": 1, "early_stopping": None},
            }
            job = client.create_job(dataset["id"], spec)
            deadline = time.monotonic() + 90
            while ((client.get_job(job["id"])["progress"] or {}).get("epoch") or 0) < 3:
                assert time.monotonic() < deadline, "the job never reached epoch 3"
                time.sleep(0.1)
            stop(doomed, signal.SIGKILL)

            rescuer = trainyard("worker", env=env, log=tmp_path / "worker2.log")
            try:
                finished = client.wait_for_job(job["id"], timeout=180)
            finally:
                stop(rescuer)
            history = client.job_metrics(job["id"])["epochs"]
    finally:
        stop(api)
    assert finished["status"] == "succeeded", finished["error"]
    assert finished["attempts"] == 2
    assert [e["epoch"] for e in history] == list(range(1, EPOCHS + 1))
    # It went on from a checkpoint taken after the kill point, not from scratch.
    resumed = re.search(r"resumes after epoch (\d+)", (tmp_path / "worker2.log").read_text())
    assert resumed is not None and int(resumed.group(1)) >= 3
