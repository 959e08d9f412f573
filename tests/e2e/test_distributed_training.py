"""Data-parallel jobs through real processes: under `trainyard run` (an API and a worker) a job
with `training.resources.processes: 2` trains under torch.distributed.run launched from the
worker, records every epoch once and predicts, and a cancel mid-training leaves no rank
running; with `nodes: 2`, two `trainyard worker` processes meet at a c10d rendezvous on the
loopback (gloo) and train one job."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from client import Client
from tests.e2e.fleet import (
    api_and_worker,
    free_port,
    rank_pids,
    service_env,
    stop,
    trainyard,
    wait_until_ready,
)
from tests.sample_data import csv_bytes, mixed_classification

pytestmark = pytest.mark.e2e
KEY = "ty_ddp_" + "d" * 24
TWO_RANKS = {"resources": {"processes": 2}, "device": "cpu", "early_stopping": None}


def wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("condition not reached in time")


def test_a_two_process_job_trains_and_a_cancelled_one_stops_every_rank(tmp_path: Path) -> None:
    port = free_port()
    env = service_env(tmp_path / "data", port, KEY)
    run = trainyard("run", env=env, log=tmp_path / "run.log")
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(base_url, [run])
        with Client(base_url, KEY) as client:
            dataset = client.upload_dataset(csv_bytes(mixed_classification()), "m.csv")
            spec = {"task": "classification", "target": "label"}
            job = client.create_job(
                dataset.id, {**spec, "training": {"epochs": 6, "learning_rate": 0.01, **TWO_RANKS}}
            )
            done = client.wait_for_job(job.id, timeout=120)
            assert done.status == "succeeded", done.error
            epochs = [entry.epoch for entry in client.job_metrics(job.id).epochs]
            assert epochs == list(range(1, 7))
            (yes, no) = client.predict(
                done.model_id,
                [
                    {"x1": 2.0, "x2": 2.0, "colour": "red"},
                    {"x1": -2.0, "x2": -2.0, "colour": "blue"},
                ],
            )
            assert (yes.label, no.label) == ("yes", "no")

            long = client.create_job(
                dataset.id, {**spec, "training": {"epochs": 1000, "batch_size": 1, **TWO_RANKS}}
            )
            wait_for(lambda: client.job_metrics(long.id).epochs and len(rank_pids()) == 2)
            client.cancel_job(long.id)
            cancelled = client.wait_for_job(long.id, timeout=60)
            assert cancelled.status == "cancelled"
            wait_for(lambda: rank_pids() == [], timeout=15)
    finally:
        stop(run)


def test_two_workers_train_one_job_as_two_nodes_on_the_loopback(tmp_path: Path) -> None:
    env = service_env(tmp_path / "data", free_port(), KEY, worker_host="127.0.0.1")
    with api_and_worker(env, tmp_path) as base_url:
        second = trainyard("worker", env=env, log=tmp_path / "worker-2.log")
        try:
            with Client(base_url, KEY) as client:
                dataset = client.upload_dataset(csv_bytes(mixed_classification()), "m.csv")
                training = {
                    "epochs": 6,
                    "learning_rate": 0.01,
                    **TWO_RANKS,
                    "resources": {"processes": 1, "nodes": 2},
                }
                job = client.create_job(
                    dataset.id, {"task": "classification", "target": "label", "training": training}
                )
                done = client.wait_for_job(job.id, timeout=180)
                assert done.status == "succeeded", done.error
                assert done.attempts == 1
                epochs = [entry.epoch for entry in client.job_metrics(job.id).epochs]
                assert epochs == list(range(1, 7))
                (yes,) = client.predict(done.model_id, [{"x1": 2.0, "x2": 2.0, "colour": "red"}])
                assert yes.label == "yes"
        finally:
            stop(second)
    # Each worker ran one node: the first recorded the job, the second joined its slot.
    logs = (tmp_path / "worker.log").read_text() + (tmp_path / "worker-2.log").read_text()
    assert "joining attempt 1 as node 1" in logs
