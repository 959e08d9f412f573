"""Models on arrays, reconstruction and forecasting: predict with nested arrays, base64 images
and windows of rows; embeddings from `encode`.

Each model is trained once per backend (module-scoped fixtures) in its own project."""

from __future__ import annotations

import base64
import io
import math

import numpy as np
import pytest
from PIL import Image

from service.jobs.training_run import run_training_job
from tests.conftest import Api, Backend
from tests.sample_data import csv_bytes, linear_regression, npz_bytes
from tests.service.conftest import worker_resources
from tests.service.models.calls import answer_from, encode, predict

BRIGHT, DARK = 7, 3  # the images' labels in y
SINE_PERIOD = 25


def assert_invalid(response, field: str) -> dict:
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_instances"
    assert field in [d["field"] for d in error["details"]], error
    return error


def png_base64(value: int, size: int = 8) -> str:
    sink = io.BytesIO()
    Image.new("L", (size, size), value).save(sink, "PNG")
    return base64.b64encode(sink.getvalue()).decode()


def image(value: int) -> list[list[int]]:
    return np.full((8, 8), value).tolist()


def sine(n: int = 300) -> list[float]:
    return (5 + 3 * np.sin(np.arange(n) * 2 * np.pi / SINE_PERIOD)).tolist()


def train(backend: Backend, api: Api, content: bytes, filename: str, spec: dict) -> dict:
    """Upload, submit and run a job to its end; the finished job."""
    upload = api.upload(content, filename)
    assert upload.status_code == 201, upload.text
    submitted = api.post("/v1/jobs", json={"dataset_id": upload.json()["id"], "spec": spec})
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["id"]
    assert run_training_job(worker_resources(backend), job_id) == "succeeded"
    return api.get(f"/v1/jobs/{job_id}").json()


@pytest.fixture(scope="module")
def owner(backend: Backend) -> Api:
    """The project that owns this module's models."""
    return Api(backend.client, backend.new_project_key())


@pytest.fixture(scope="module")
def image_model_id(backend: Backend, owner: Api) -> str:
    """A small CNN on 120 8x8 grey images: bright ones are 7, dark ones 3."""
    rng = np.random.default_rng(0)
    y = np.repeat([DARK, BRIGHT], 60)
    x = np.where(y == BRIGHT, 200, 40)[:, None, None] + rng.integers(-30, 30, (120, 8, 8))
    spec = {
        "task": "classification",
        "target": "y",
        "model": {"family": "cnn", "filters": [4]},
        "training": {"epochs": 8, "learning_rate": 0.01},
    }
    job = train(backend, owner, npz_bytes(x=x.astype(np.uint8), y=y), "shades.npz", spec)
    assert job["metrics"]["val_accuracy"] == 1.0
    return job["model_id"]


@pytest.fixture(scope="module")
def autoencoder_model_id(backend: Backend, owner: Api) -> str:
    spec = {
        "task": "reconstruction",
        "model": {"family": "autoencoder", "latent": 2},
        "training": {"epochs": 15, "learning_rate": 0.01},
    }
    job = train(backend, owner, csv_bytes(linear_regression()), "linear.csv", spec)
    return job["model_id"]


@pytest.fixture(scope="module")
def forecast_job(backend: Backend, owner: Api) -> dict:
    spec = {
        "task": "forecasting",
        "target": "value",
        "data": {"window": 8, "horizon": 1},
        "model": {"family": "rnn", "cell": "gru", "hidden": 8},
        "training": {"epochs": 8, "learning_rate": 0.01},
    }
    return train(backend, owner, csv_bytes({"value": sine()}), "sine.csv", spec)


# --- images -----------------------------------------------------------------------------------


def test_cnn_predicts_nested_lists_with_labels_from_y(owner: Api, image_model_id: str) -> None:
    response = predict(owner, image_model_id, [image(220), image(25), [image(210)]])
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    # [8, 8] and [1, 8, 8] are both one grey image.
    assert [p["label"] for p in predictions] == [BRIGHT, DARK, BRIGHT]
    for p in predictions:
        assert set(p["probabilities"]) == {str(DARK), str(BRIGHT)}
        assert math.isclose(sum(p["probabilities"].values()), 1.0, rel_tol=1e-5)
        assert p["probabilities"][str(p["label"])] > 0.5


def test_cnn_predicts_base64_pngs(owner: Api, image_model_id: str) -> None:
    instances = [
        png_base64(230),
        png_base64(20),
        {"b64": png_base64(230)},
        png_base64(20, size=16),  # resized to the training size
    ]
    response = predict(owner, image_model_id, instances)
    assert response.status_code == 200, response.text
    labels = [p["label"] for p in response.json()["predictions"]]
    assert labels == [BRIGHT, DARK, BRIGHT, DARK]


def test_wrong_shape_instance_is_422(owner: Api, image_model_id: str) -> None:
    error = assert_invalid(
        predict(owner, image_model_id, [np.zeros((7, 8)).tolist()]), "instances[0]"
    )
    assert "[8, 8]" in error["message"] and "[7, 8]" in error["message"]
    # In a batch only the bad instance is named.
    response = predict(owner, image_model_id, [image(200), np.zeros((8, 9)).tolist()])
    assert_invalid(response, "instances[1]")
    assert [d["field"] for d in response.json()["error"]["details"]] == ["instances[1]"]


def test_base64_that_is_not_an_image_is_422(owner: Api, image_model_id: str) -> None:
    not_png = base64.b64encode(b"plain text, not a picture").decode()
    error = assert_invalid(predict(owner, image_model_id, ["%%%", not_png]), "instances[0]")
    assert [d["field"] for d in error["details"]] == ["instances[0]", "instances[1]"]


def test_encode_on_a_classifier_is_409(owner: Api, image_model_id: str) -> None:
    response = encode(owner, image_model_id, [image(200)])
    assert response.status_code == 409, response.text
    error = response.json()["error"]
    assert error["code"] == "conflict"
    assert "autoencoder" in error["message"]
    assert error["details"] == {"family": "cnn"}


# --- reconstruction ---------------------------------------------------------------------------

TYPICAL = {"a": 0.0, "b": 0.0, "y": 10.0}  # y = 3a - 2b + 10, at the centre of the data
FAR_OFF = {"a": 8.0, "b": -8.0, "y": -60.0}  # far outside, and off the y = 3a - 2b + 10 plane


def test_reconstruction_scores_a_far_off_row_higher(owner: Api, autoencoder_model_id: str) -> None:
    response = predict(owner, autoencoder_model_id, [TYPICAL, FAR_OFF])
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert [set(p) for p in predictions] == [{"anomaly_score"}, {"anomaly_score"}]
    typical, far_off = (p["anomaly_score"] for p in predictions)
    assert 0.0 <= typical < 1.0
    assert far_off > 10 * typical


def test_encode_gives_an_embedding_of_latent_length(owner: Api, autoencoder_model_id: str) -> None:
    response = encode(owner, autoencoder_model_id, [TYPICAL, FAR_OFF, TYPICAL])
    embeddings = answer_from(autoencoder_model_id, response)["embeddings"]
    assert [len(e) for e in embeddings] == [2, 2, 2]
    assert all(math.isfinite(v) for e in embeddings for v in e)
    assert embeddings[0] == embeddings[2]  # the same row, the same code
    assert embeddings[0] != embeddings[1]


def test_encode_with_a_missing_column_is_422(owner: Api, autoencoder_model_id: str) -> None:
    error = assert_invalid(encode(owner, autoencoder_model_id, [{"a": 1.0}]), "instances[0].b")
    assert "'b'" in error["message"]


def test_encode_unknown_model_is_404(api: Api) -> None:
    response = encode(api, "mdl_doesnotexist", [TYPICAL])
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "not_found"
    assert "mdl_doesnotexist" in error["message"]


def test_encode_another_projects_model_is_404(api: Api, autoencoder_model_id: str) -> None:
    response = encode(api, autoencoder_model_id, [TYPICAL])
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_encode_without_key_is_401(backend: Backend, autoencoder_model_id: str) -> None:
    url = f"/v1/models/{autoencoder_model_id}/encode"
    response = backend.client.post(url, json={"instances": [TYPICAL]})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


# --- forecasting ------------------------------------------------------------------------------


def test_forecasting_job_reports_val_rmse_every_epoch(owner: Api, forecast_job: dict) -> None:
    assert forecast_job["status"] == "succeeded"
    assert forecast_job["model_id"]
    history = owner.get(f"/v1/jobs/{forecast_job['id']}/metrics").json()["epochs"]
    assert [e["epoch"] for e in history] == list(range(1, len(history) + 1))
    assert all("val_rmse" in e["values"] for e in history)
    # The sine swings by +-3; the model follows it far better than its spread.
    assert forecast_job["metrics"]["val_rmse"] < 1.0
    assert history[-1]["values"]["val_rmse"] < history[0]["values"]["val_rmse"]


def test_forecast_from_windows_of_rows(owner: Api, forecast_job: dict) -> None:
    series = sine(320)
    starts = [100, 137, 310]  # 310: past the end of the training series
    windows = [[{"value": v} for v in series[s : s + 8]] for s in starts]
    response = predict(owner, forecast_job["model_id"], windows)
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert [set(p) for p in predictions] == [{"value"}] * 3
    for start, p in zip(starts, predictions, strict=True):
        next_value = 5 + 3 * math.sin((start + 8) * 2 * math.pi / SINE_PERIOD)
        assert abs(p["value"] - next_value) < 1.0, (start, p, next_value)


def test_forecast_window_of_the_wrong_length_is_422(owner: Api, forecast_job: dict) -> None:
    window = [{"value": v} for v in sine()[:5]]
    error = assert_invalid(predict(owner, forecast_job["model_id"], [window]), "instances[0]")
    assert "[8, 1]" in error["message"] and "[5, 1]" in error["message"]


def test_forecast_window_without_the_target_column_is_422(owner: Api, forecast_job: dict) -> None:
    window = [{"level": v} for v in sine()[:8]]
    error = assert_invalid(predict(owner, forecast_job["model_id"], [window]), "instances[0]")
    assert "'value'" in error["message"]
