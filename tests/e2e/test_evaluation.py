"""Given splits and evaluations end to end on the embedded default (`trainyard run`: a real HTTP
server and a real Celery worker), through the SDK: train on a whole file with a given test
file, then score the model on that file as an evaluation on the worker, and find the job's
test report again, listed under the model version."""

from __future__ import annotations

import pytest

from client import Client
from tests.e2e.fleet import free_port, service_env, stop, trainyard, wait_until_ready
from tests.sample_data import csv_bytes, mixed_classification

pytestmark = pytest.mark.e2e
KEY = "ty_e2e_" + "e" * 24


def test_a_model_trained_on_a_whole_file_is_evaluated_on_a_worker(tmp_path) -> None:
    port = free_port()
    run = trainyard("run", env=service_env(tmp_path / "data", port, KEY), log=tmp_path / "log")
    try:
        base_url = f"http://127.0.0.1:{port}"
        wait_until_ready(base_url, [run])
        with Client(base_url, KEY) as client:
            train = client.upload_dataset(csv_bytes(mixed_classification(n=200, seed=1)), "t.csv")
            test = client.upload_dataset(csv_bytes(mixed_classification(n=80, seed=2)), "h.csv")
            spec = {
                "task": "classification",
                "target": "label",
                "training": {"epochs": 5, "early_stopping": None},
                "data": {"split": {"validation": 0}},
            }
            job = client.create_job(train.id, spec, test_dataset_id=test.id)
            assert job.test_dataset_id == test.id
            job = client.wait_for_job(job.id, timeout=120)
            assert job.status == "succeeded", job.error
            assert job.report["rows"] == {"train": 200, "validation": 0, "test": 80}

            evaluation = client.create_evaluation(job.model_id, test.id)
            done = client.wait_for_evaluation(evaluation.id, timeout=120)
            assert done.status == "succeeded", done.error
            assert done.attempts == 1
            assert done.report["metrics"] == pytest.approx(job.report["evaluation"]["metrics"])
            listed = client.list_model_evaluations(job.model_id, dataset_id=test.id)
            assert [e.id for e in listed.items] == [evaluation.id]
            events = list(client.stream_evaluation(evaluation.id))
            assert events[-1].type == "end" and events[-1].data == {"status": "succeeded"}
    finally:
        stop(run)
