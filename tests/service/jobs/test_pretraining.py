"""Issue 17 point 2 through the API: DBN pretraining checked by POST /v1/specs/validate,
trained as a job whose metrics history has the RBM epochs then the fine-tuning epochs, and
cancelled while it pretrains."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from service.jobs.training_run import run_training_job
from tests.conftest import Api, Backend, assert_invalid
from tests.sample_data import csv_bytes
from tests.service.conftest import worker_resources

PRETRAINED = {"hidden": [12, 6], "dropout": 0.0, "pretrain": {"epochs": 2, "cd_k": 2}}


def _spec(model: dict, **training) -> dict:
    return {
        "task": "classification",
        "target": "label",
        "model": model,
        "training": {"epochs": 3, "batch_size": 32, "early_stopping": None, **training},
    }


@pytest.fixture
def blobs_id(api: Api) -> str:
    rng = np.random.default_rng(0)
    n = 200
    label = np.arange(n) % 2
    columns = {f"x{i}": (rng.normal(size=n) + label * (i % 2)).tolist() for i in range(6)}
    response = api.upload(csv_bytes({**columns, "label": label.tolist()}), "blobs.csv")
    assert response.status_code == 201, response.text
    return response.json()["id"]


def test_validate_shows_the_rbms(api: Api, blobs_id: str) -> None:
    response = api.post(
        "/v1/specs/validate", json={"dataset_id": blobs_id, "spec": _spec(PRETRAINED)}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"]["activation"] == "sigmoid"
    pretraining = body["pretraining"]
    assert (pretraining["total_epochs"], pretraining["cd_k"]) == (4, 2)
    assert [(r["visible_units"], r["hidden_units"]) for r in pretraining["rbms"]] == [
        (6, 12),
        (12, 6),
    ]
    dense = {row["name"] for row in body["layers"] if row["type"] == "dense"}
    assert {r["layer"] for r in pretraining["rbms"]} <= dense
    plain = api.post("/v1/specs/validate", json={"dataset_id": blobs_id, "spec": _spec({})})
    assert plain.json()["pretraining"] is None


@pytest.mark.parametrize(
    ("model", "field", "words"),
    [
        ({"family": "rnn", "pretrain": {}}, "spec.model.pretrain", "mlp"),
        ({"activation": "relu", "pretrain": {}}, "spec.model.pretrain", "sigmoid"),
        ({"batch_norm": True, "pretrain": {}}, "spec.model.pretrain", "batch_norm"),
        ({"pretrain": {"epochs": 0}}, "spec.model.pretrain.epochs", "greater"),
        ({"pretrain": {"epochs": 1001}}, "spec.model.pretrain.epochs", "less"),
        ({"pretrain": {"method": "sae"}}, "spec.model.pretrain.method", "dbn"),
    ],
)
def test_pretraining_that_cannot_run_is_a_422_naming_the_field(
    api: Api, blobs_id: str, model: dict, field: str, words: str
) -> None:
    response = api.post("/v1/specs/validate", json={"dataset_id": blobs_id, "spec": _spec(model)})
    error = assert_invalid(response, field)
    assert words in error["message"], error


def test_a_pretrained_job_records_rbm_epochs_then_fine_tuning(
    api: Api, blobs_id: str, run_job
) -> None:
    response = api.post("/v1/jobs", json={"dataset_id": blobs_id, "spec": _spec(PRETRAINED)})
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    assert run_job(job_id) == "succeeded", api.get(f"/v1/jobs/{job_id}").json()
    job = api.get(f"/v1/jobs/{job_id}").json()
    assert job["progress"]["epoch"] == job["progress"]["epochs"] == 7
    epochs = api.get(f"/v1/jobs/{job_id}/metrics").json()["epochs"]
    assert [e["epoch"] for e in epochs] == list(range(1, 8))
    assert [e["values"].get("pretrain_layer") for e in epochs[:4]] == [1, 1, 2, 2]
    assert all(e["values"]["pretrain_reconstruction_error"] >= 0 for e in epochs[:4])
    assert all("train_loss" not in e["values"] for e in epochs[:4])
    assert all(
        "val_loss" in e["values"] and "pretrain_layer" not in e["values"] for e in epochs[4:]
    )


def test_a_job_cancelled_while_it_pretrains_stops(backend: Backend, api: Api) -> None:
    rng = np.random.default_rng(1)
    n = 4000
    columns = {f"x{i}": rng.normal(size=n).tolist() for i in range(8)}
    upload = api.upload(csv_bytes({**columns, "label": (np.arange(n) % 2).tolist()}), "big.csv")
    model = {"hidden": [64, 64], "pretrain": {"epochs": 1000, "cd_k": 5}}
    spec = _spec(model, batch_size=1)
    job_id = api.post("/v1/jobs", json={"dataset_id": upload.json()["id"], "spec": spec}).json()[
        "id"
    ]
    outcome: dict = {}
    thread = threading.Thread(
        target=lambda: outcome.setdefault(
            "result", run_training_job(worker_resources(backend), job_id)
        )
    )
    thread.start()
    deadline = time.monotonic() + 60
    while api.get(f"/v1/jobs/{job_id}").json()["status"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert api.post(f"/v1/jobs/{job_id}/cancel").status_code == 202
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert outcome["result"] == "cancelled"
    job = api.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "cancelled" and job["model_id"] is None
    epochs = api.get(f"/v1/jobs/{job_id}/metrics").json()["epochs"]
    assert all("train_loss" not in e["values"] for e in epochs)  # never reached fine-tuning
