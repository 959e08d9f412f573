from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from service.core.database import create_session_factory
from service.core.leased_run import WorkerResources
from service.jobs.training_run import run_training_job
from tests.conftest import Api, Backend
from tests.sample_data import csv_bytes, mixed_classification
from tests.service.leases import purge_queue


def worker_resources(backend: Backend) -> WorkerResources:
    return WorkerResources(
        session_factory=create_session_factory(backend.app.state.db_engine),
        store=backend.app.state.store,
        settings=backend.settings,
        worker_id="test-worker",
        queue=backend.app.state.queue,
    )


def labels_of_both_classes(api: Api, model_id: str) -> list[str]:
    """What a model trained on mixed_classification predicts for one row deep in each class
    (expected: yes, then no)."""
    predicted = api.post(
        f"/v1/models/{model_id}/predict",
        json={
            "instances": [
                {"x1": 2.0, "x2": 2.0, "colour": "red"},
                {"x1": -2.0, "x2": -2.0, "colour": "blue"},
            ]
        },
    )
    assert predicted.status_code == 200, predicted.text
    return [p["label"] for p in predicted.json()["predictions"]]


@pytest.fixture
def run_job(backend: Backend) -> Callable[[str], str]:
    """Run a queued job to its end in this process, as a worker would."""
    return lambda job_id: run_training_job(worker_resources(backend), job_id)


@pytest.fixture
def dataset_id(api: Api) -> str:
    response = api.upload(csv_bytes(mixed_classification()), "mixed.csv")
    assert response.status_code == 201, response.text
    return response.json()["id"]


@pytest.fixture
def submit(api: Api) -> Callable[..., dict]:
    def submit(dataset_id: str, **spec) -> dict:
        spec = {"task": "classification", "target": "label", **spec}
        response = api.post("/v1/jobs", json={"dataset_id": dataset_id, "spec": spec})
        assert response.status_code == 202, response.text
        return response.json()

    return submit


@pytest.fixture
def trained_model_id(api: Api, dataset_id: str, submit, run_job) -> str:
    job = submit(dataset_id, training={"epochs": 30})
    assert run_job(job["id"]) == "succeeded"
    return api.get(f"/v1/jobs/{job['id']}").json()["model_id"]


@pytest.fixture
def own_queue(backend: Backend) -> Iterator[str]:
    """An empty queue of this test's own, so its message count means something (the shared
    ones hold other tests' messages); purged after, pass or fail."""
    name = f"test-{uuid.uuid4().hex[:8]}"
    yield name
    purge_queue(backend, name)
