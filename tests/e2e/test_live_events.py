"""Live events end to end: a real HTTP server and a real worker process (`trainyard run` on the
embedded default; `trainyard api` + `trainyard worker` on PostgreSQL and Redis), the SDK
reading a job's stream over HTTP while it trains, dropping the connection part way and
resuming with Last-Event-ID: every epoch arrives once, in order, and the stream ends."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from client import Client, Event
from tests.e2e.fleet import (
    api_and_worker,
    free_port,
    postgres_redis_env,
    service_env,
    stop,
    trainyard,
    wait_until_ready,
)
from tests.sample_data import csv_bytes, mixed_classification

pytestmark = pytest.mark.e2e
KEY = "ty_e2e_" + "e" * 24
EPOCHS = 60
DROP_AFTER_EPOCH = 10


@contextmanager
def service(kind: str, tmp_path: Path) -> Iterator[str]:
    if kind == "sqlite":
        port = free_port()
        run = trainyard("run", env=service_env(tmp_path / "data", port, KEY), log=tmp_path / "log")
        try:
            wait_until_ready(f"http://127.0.0.1:{port}", [run])
            yield f"http://127.0.0.1:{port}"
        finally:
            stop(run)
        return
    with postgres_redis_env(tmp_path / "data", KEY) as env, api_and_worker(env, tmp_path) as url:
        yield url


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_a_job_streams_every_epoch_once_across_a_dropped_connection(kind, tmp_path) -> None:
    with service(kind, tmp_path) as base_url, Client(base_url, KEY) as client:
        dataset = client.upload_dataset(csv_bytes(mixed_classification(n=400)), "train.csv")
        spec = {"task": "classification", "target": "label", "training": {"epochs": EPOCHS}}
        job = client.create_job(dataset["id"], spec)

        first: list[Event] = []
        for event in client.stream_job(job["id"]):
            first.append(event)
            if event.type == "progress" and event.data["epoch"] == DROP_AFTER_EPOCH:
                break  # the connection closes here, mid-training
        rest = list(client.stream_job(job["id"], last_event_id=first[-1].id))
        # The record, to check the stream against (early stopping may end it before EPOCHS).
        record = client.get_job(job["id"])

    assert first[0].type == "status" and first[0].data["status"] in ("queued", "running")
    events = first + rest
    epochs = [e.data["epoch"] for e in events if e.type == "progress"]
    assert record["status"] == "succeeded"
    assert epochs == list(range(1, record["progress"]["epoch"] + 1))
    assert len(epochs) > DROP_AFTER_EPOCH
    assert events[-1].type == "end" and events[-1].data == {"status": "succeeded"}
