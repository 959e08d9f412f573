"""GANs through the API: generation jobs on a table and on tiny images, seeded samples decoded
to raw values or PNGs, and the clear refusals around them (bad n or label, predict on a
generator, sample from a classifier).

Each model is trained once per backend (module-scoped fixtures) in its own project."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from tests.conftest import Api, Backend, assert_invalid
from tests.sample_data import csv_bytes, mixed_classification, npz_bytes
from tests.service.models.test_encode_and_arrays import train

TABLE_SPEC = {
    "task": "generation",
    "target": "label",
    "model": {"family": "gan", "conditional": True, "hidden": [32, 32], "latent_dim": 8},
    "training": {"epochs": 3, "batch_size": 64},
}
IMAGE_SPEC = {
    "task": "generation",
    "target": "y",
    "model": {"family": "gan", "conditional": True, "filters": [8, 4], "spectral_norm": True},
    "training": {"epochs": 2, "batch_size": 32},
}


def table_columns() -> dict[str, list]:
    columns = mixed_classification()
    columns["rooms"] = [1 + i % 5 for i in range(len(columns["x1"]))]
    return columns


@pytest.fixture(scope="module")
def owner(backend: Backend) -> Api:
    return Api(backend.client, backend.new_project_key())


@pytest.fixture(scope="module")
def table_job(backend: Backend, owner: Api) -> dict:
    return train(backend, owner, csv_bytes(table_columns()), "mixed.csv", TABLE_SPEC)


@pytest.fixture(scope="module")
def image_job(backend: Backend, owner: Api) -> dict:
    rng = np.random.default_rng(0)
    y = np.repeat([3, 7], 40)
    x = np.where(y == 7, 200, 40)[:, None, None] + rng.integers(-30, 30, (80, 8, 8))
    return train(backend, owner, npz_bytes(x=x.astype(np.uint8), y=y), "shades.npz", IMAGE_SPEC)


def sample(api: Api, model_id: str, **body):
    return api.post(f"/v1/models/{model_id}/sample", json=body)


def test_a_generation_job_records_both_losses_every_epoch(owner: Api, table_job: dict) -> None:
    assert table_job["progress"]["epoch"] == table_job["progress"]["epochs"] == 3
    history = owner.get(f"/v1/jobs/{table_job['id']}/metrics").json()
    text = str(history)
    assert "d_loss" in text and "g_loss" in text
    assert {"d_loss", "g_loss", "sample_std_ratio"} <= set(table_job["metrics"])


def test_sampled_rows_hold_raw_values_of_the_training_columns(owner: Api, table_job: dict) -> None:
    columns = table_columns()
    response = sample(owner, table_job["model_id"], n=50, seed=3, label="yes")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["kind"] == "rows" and body["seed"] == 3 and len(body["rows"]) == 50
    x1 = np.array(columns["x1"])
    for row in body["rows"]:
        assert set(row) == {"x1", "x2", "colour", "rooms", "label"}
        assert row["label"] == "yes"
        assert row["colour"] in {"red", "green", "blue"}
        assert x1.min() - 1e-6 <= row["x1"] <= x1.max() + 1e-6
        assert isinstance(row["rooms"], int) and 1 <= row["rooms"] <= 5


def test_the_same_seed_gives_the_same_rows(owner: Api, table_job: dict) -> None:
    model_id = table_job["model_id"]
    first = sample(owner, model_id, n=8, seed=11).json()
    assert sample(owner, model_id, n=8, seed=11).json() == first
    assert sample(owner, model_id, n=8, seed=12).json()["rows"] != first["rows"]
    # Without a label, classes come as often as in the training rows.
    assert {row["label"] for row in sample(owner, model_id, n=60, seed=1).json()["rows"]} == {
        "yes",
        "no",
    }


def test_sampled_images_are_pngs_of_the_training_size(owner: Api, image_job: dict) -> None:
    response = sample(owner, image_job["model_id"], n=4, seed=0, label=7)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["kind"] == "images" and len(body["images"]) == 4
    for item in body["images"]:
        assert item["label"] == 7
        picture = Image.open(io.BytesIO(base64.b64decode(item["png"])))
        assert picture.format == "PNG" and picture.size == (8, 8) and picture.mode == "L"
    again = sample(owner, image_job["model_id"], n=4, seed=0, label=7).json()
    assert again["images"] == body["images"]


@pytest.mark.parametrize("n", [0, 1001, "many"])
def test_a_bad_n_is_a_422(owner: Api, table_job: dict, n) -> None:
    assert_invalid(sample(owner, table_job["model_id"], n=n), "n")


def test_a_label_the_model_does_not_know_is_a_422(owner: Api, table_job: dict) -> None:
    error = assert_invalid(sample(owner, table_job["model_id"], label="maybe"), "label")
    assert "'yes'" in error["message"]


def test_predict_encode_and_batch_prediction_on_a_generator_are_409s(
    owner: Api, table_job: dict
) -> None:
    model_id = table_job["model_id"]
    row = {"x1": 0.1, "x2": 0.2, "colour": "red", "rooms": 2}
    for route in ("predict", "encode"):
        response = owner.post(f"/v1/models/{model_id}/{route}", json={"instances": [row]})
        assert response.status_code == 409, response.text
        assert response.json()["error"]["code"] == "not_a_predictor"
    dataset = owner.upload(csv_bytes(table_columns()), "again.csv").json()
    response = owner.post(
        f"/v1/models/{model_id}/batch-predictions", json={"dataset_id": dataset["id"]}
    )
    assert response.status_code == 409, response.text
    response = owner.get(f"/v1/models/{model_id}/export", params={"format": "onnx"})
    assert response.status_code == 409, response.text


def test_sampling_a_model_that_is_no_generator_is_a_409(api: Api, trained_model_id: str) -> None:
    response = sample(api, trained_model_id, n=2)
    assert response.status_code == 409, response.text
    assert response.json()["error"]["code"] == "not_a_generator"


def test_sampling_an_unknown_model_is_a_404(api: Api) -> None:
    assert sample(api, "mdl_nope", n=2).status_code == 404
