"""Given splits and evaluations end to end on the embedded default (`trainyard run`: a real HTTP
server and a real Celery worker): train on a whole file with a given test file, then score the
model on that file as an evaluation on the worker, and find the job's test report again."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.e2e.fleet import free_port, service_env, stop, trainyard, wait_until_ready
from tests.sample_data import csv_bytes, mixed_classification

pytestmark = pytest.mark.e2e
KEY = "ty_e2e_" + "e" * 24


def until_done(http: httpx.Client, path: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = http.get(path).json()
        if body["status"] not in ("queued", "running"):
            return body
        assert time.monotonic() < deadline, f"{path} still {body['status']}"
        time.sleep(0.05)


def upload(http: httpx.Client, content: bytes, name: str) -> str:
    response = http.post("/v1/datasets", files={"file": (name, content)})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def test_a_model_trained_on_a_whole_file_is_evaluated_on_a_worker(tmp_path) -> None:
    port = free_port()
    run = trainyard("run", env=service_env(tmp_path / "data", port, KEY), log=tmp_path / "log")
    try:
        wait_until_ready(f"http://127.0.0.1:{port}", [run])
        headers = {"Authorization": f"Bearer {KEY}"}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers) as http:
            train_id = upload(http, csv_bytes(mixed_classification(n=200, seed=1)), "t.csv")
            test_id = upload(http, csv_bytes(mixed_classification(n=80, seed=2)), "h.csv")
            spec = {
                "task": "classification",
                "target": "label",
                "training": {"epochs": 5, "early_stopping": None},
                "data": {"split": {"validation": 0}},
            }
            body = {"dataset_id": train_id, "test_dataset_id": test_id, "spec": spec}
            response = http.post("/v1/jobs", json=body)
            assert response.status_code == 202, response.text
            job = until_done(http, f"/v1/jobs/{response.json()['id']}")
            assert job["status"] == "succeeded", job["error"]
            assert job["report"]["rows"] == {"train": 200, "validation": 0, "test": 80}

            response = http.post(
                f"/v1/models/{job['model_id']}/evaluations", json={"dataset_id": test_id}
            )
            assert response.status_code == 202, response.text
            done = until_done(http, f"/v1/evaluations/{response.json()['id']}")
            assert done["status"] == "succeeded", done["error"]
            assert done["attempts"] == 1
            assert done["report"]["metrics"] == pytest.approx(
                job["report"]["evaluation"]["metrics"]
            )
    finally:
        stop(run)
