"""A study on two real workers, on the embedded default and on PostgreSQL + Redis: its trials
train in parallel, one worker is killed (SIGKILL) while it trains a trial, and the study
still reaches max_trials with every trial number once, the killed trial taken over."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from client import Client
from tests.conftest import REDIS_URL, fresh_postgres_database, redis_key_prefix
from tests.e2e.fleet import stop
from tests.reliability.servers import Service, running_service
from tests.sample_data import csv_bytes, mixed_classification

pytestmark = pytest.mark.reliability
KEY = "ty_rel_" + "s" * 24
TRIALS = 5
LEASE_SECONDS = 4


@contextmanager
def service_on(kind: str, tmp_path: Path) -> Iterator[Service]:
    settings = {"lease_seconds": str(LEASE_SECONDS), "checkpoint_interval_seconds": "0"}
    if kind == "sqlite":
        with running_service(tmp_path, KEY, **settings) as service:
            yield service
        return
    with (
        fresh_postgres_database() as database_url,
        redis_key_prefix() as prefix,
        running_service(
            tmp_path,
            KEY,
            database_url=database_url,
            broker_url=REDIS_URL,
            broker_key_prefix=prefix,
            **settings,
        ) as service,
    ):
        yield service


def wait_for_ready_workers(log_dir: Path, names: list[str], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    for name in names:
        while "ready." not in (log_dir / f"{name}.log").read_text():
            assert time.monotonic() < deadline, f"{name} never became ready"
            time.sleep(0.2)


def slow_study(client: Client, epochs: int, **options: object) -> dict:
    """A study body over a fresh dataset whose trials train one row a step."""
    dataset = client.upload_dataset(csv_bytes(mixed_classification(n=400)), "m.csv")
    return {
        "dataset_id": dataset["id"],
        "spec": {
            "task": "classification",
            "target": "label",
            "training": {"epochs": epochs, "batch_size": 1, "early_stopping": None},
        },
        "search_space": {
            "training.learning_rate": {"type": "float", "low": 1e-3, "high": 3e-2, "log": True}
        },
        **options,
    }


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_a_study_trains_trials_in_parallel_and_survives_a_killed_worker(
    kind: str, tmp_path: Path
) -> None:
    with service_on(kind, tmp_path) as service, service.client() as client:
        workers = {name: service.worker(name) for name in ("worker1", "worker2")}
        wait_for_ready_workers(tmp_path, list(workers))
        # One row a step: a trial lasts long enough to be killed in the middle.
        body = slow_study(client, epochs=12, max_trials=TRIALS, parallel_trials=2, pruner="none")
        created = client.http.post("/v1/studies", json=body)
        assert created.status_code == 202, created.text
        study_id = created.json()["id"]

        def study() -> dict:
            return client.http.get(f"/v1/studies/{study_id}").json()

        deadline = time.monotonic() + 120
        while (now := study())["counts"]["running"] < 2:
            assert time.monotonic() < deadline, f"trials never ran in parallel: {now['counts']}"
            time.sleep(0.1)
        # Kill the worker of a running trial a few epochs in, before the study is half done.
        running = next(t for t in now["trials"] if t["state"] == "running")
        while client.get_job(running["job_id"])["progress"]["epoch"] < 2:
            time.sleep(0.1)
        victim = workers.pop("worker1")
        stop(victim, signal.SIGKILL)

        deadline = time.monotonic() + 300
        while (final := study())["status"] == "running":
            assert time.monotonic() < deadline, f"the study never ended: {final['counts']}"
            time.sleep(0.5)
        jobs = [client.get_job(t["job_id"]) for t in final["trials"]]

    assert final["status"] == "succeeded", final
    assert sorted(t["number"] for t in final["trials"]) == list(range(TRIALS))
    assert final["counts"]["succeeded"] == TRIALS
    # The killed worker's trial went on elsewhere: some trial needed a second attempt.
    assert max(job["attempts"] for job in jobs) >= 2
    assert all(job["progress"]["epoch"] == 12 for job in jobs)
    assert final["best"] is not None and final["best"]["model"].endswith("@best")


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_a_cancelled_study_stops_its_running_trials_and_queues_no_more(
    kind: str, tmp_path: Path
) -> None:
    with service_on(kind, tmp_path) as service, service.client() as client:
        service.worker("worker1")
        wait_for_ready_workers(tmp_path, ["worker1"])
        body = slow_study(client, epochs=500, max_trials=6, parallel_trials=2)
        created = client.http.post("/v1/studies", json=body)
        assert created.status_code == 202, created.text
        study_id = created.json()["id"]

        def training(study: dict) -> bool:
            return any(t["state"] == "running" and t["epochs_run"] >= 1 for t in study["trials"])

        deadline = time.monotonic() + 120
        while not training(now := client.http.get(f"/v1/studies/{study_id}").json()):
            assert time.monotonic() < deadline, f"no trial ever trained: {now['counts']}"
            time.sleep(0.2)

        cancelled = client.http.post(f"/v1/studies/{study_id}/cancel")
        assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled"
        deadline = time.monotonic() + 60
        while (now := client.http.get(f"/v1/studies/{study_id}").json())["counts"]["running"]:
            assert time.monotonic() < deadline, f"a trial kept training: {now['trials']}"
            time.sleep(0.2)
        jobs = [client.get_job(t["job_id"]) for t in now["trials"]]

    assert now["status"] == "cancelled"
    assert len(now["trials"]) == 2  # nothing was queued after the cancel
    assert all(job["status"] == "cancelled" for job in jobs), jobs
    # The running trial stopped long before its 500 epochs (a queued one never started).
    epochs = [(job["progress"] or {}).get("epoch", 0) for job in jobs]
    assert 1 <= max(epochs) < 500, epochs
