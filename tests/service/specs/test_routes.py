from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import Api, Backend, assert_invalid
from tests.sample_data import csv_bytes, mixed_classification, npz_bytes

CLASSIFY = {"task": "classification", "target": "label"}
CLASSIFY_ARRAYS = {"task": "classification", "target": "y"}


def validate(api: Api, dataset_id: str, spec: dict):
    return api.post("/v1/specs/validate", json={"dataset_id": dataset_id, "spec": spec})


def upload(api: Api, content: bytes, filename: str) -> str:
    response = api.upload(content, filename)
    assert response.status_code == 201, response.text
    return response.json()["id"]


@pytest.fixture
def sequence_dataset_id(api: Api) -> str:
    """60 sequences of 20 steps x 2 channels, 3 classes."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 20, 2)).astype(np.float32)
    y = np.arange(60) % 3
    return upload(api, npz_bytes(x=x, y=y), "sequences.npz")


def pool_then_conv(kernel_size: int) -> dict:
    """max_pool1d(4) turns [20, 2] into [5, 2]; then a conv1d with `kernel_size`."""
    return {
        **CLASSIFY_ARRAYS,
        "model": {
            "layers": [
                {"type": "max_pool1d", "size": 4},
                {"type": "conv1d", "filters": 4, "kernel_size": kernel_size, "padding": "valid"},
            ]
        },
    }


# --- validate ---------------------------------------------------------------------------------


def test_default_spec_on_a_csv_gives_the_mlp_layer_table(api: Api) -> None:
    columns = mixed_classification()
    dataset_id = upload(api, csv_bytes(columns), "mixed.csv")
    response = validate(api, dataset_id, CLASSIFY)
    assert response.status_code == 200, response.text
    body = response.json()
    # x1 and x2, and one column per colour after one-hot encoding.
    features = 2 + len(set(columns["colour"]))
    assert body["input_shape"] == [features]
    assert body["output_shape"] == [2]  # yes / no
    assert body["model"]["family"] == "mlp"
    assert body["model"]["hidden"] == [64, 32]
    assert body["parameters"] == sum(layer["parameters"] for layer in body["layers"])
    dense = [layer for layer in body["layers"] if layer["type"] == "dense"]
    assert [layer["output_shape"] for layer in dense] == [[64], [32], [2]]
    assert dense[0]["parameters"] == (features + 1) * 64
    assert body["layers"][-1]["output_shape"] == body["output_shape"]


def test_explicit_layers_on_a_sequence_dataset_give_each_layers_shape(
    api: Api, sequence_dataset_id: str
) -> None:
    spec = {
        **CLASSIFY_ARRAYS,
        "model": {
            "layers": [
                {"type": "conv1d", "filters": 4, "kernel_size": 3, "padding": "valid"},
                {"type": "max_pool1d", "size": 2},
                {"type": "gru", "units": 5},
            ]
        },
    }
    response = validate(api, sequence_dataset_id, spec)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["input_shape"] == [20, 2]
    assert body["output_shape"] == [3]
    assert body["model"]["family"] == "layers"
    table = [(layer["name"], layer["type"], layer["output_shape"]) for layer in body["layers"]]
    assert table == [
        ("layers[0]", "conv1d", [18, 4]),  # 20 - 3 + 1 steps, 4 filters
        ("layers[1]", "max_pool1d", [9, 4]),
        ("layers[2]", "gru", [5]),
        ("head[0]", "dense", [3]),  # appended: one output per class
    ]
    assert body["layers"][0]["parameters"] == 4 * 2 * 3 + 4
    assert body["parameters"] == sum(layer["parameters"] for layer in body["layers"])


def test_validate_reconstruction_ends_at_the_input_shape(api: Api, dataset_id: str) -> None:
    spec = {"task": "reconstruction", "model": {"family": "autoencoder", "latent": 2}}
    response = validate(api, dataset_id, spec)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["output_shape"] == body["input_shape"]
    assert body["model"]["family"] == "autoencoder"
    assert [2] in [layer["output_shape"] for layer in body["layers"]]  # the latent code


def test_conv1d_kernel_longer_than_its_input_is_422_naming_the_layer(
    api: Api, sequence_dataset_id: str
) -> None:
    response = validate(api, sequence_dataset_id, pool_then_conv(kernel_size=7))
    error = assert_invalid(response, "spec.model.layers[1].kernel_size")
    assert error["code"] == "invalid_spec"
    assert "7" in error["message"] and "5" in error["message"]
    # The same kernel fits once the sequence is long enough at that layer.
    assert validate(api, sequence_dataset_id, pool_then_conv(kernel_size=5)).status_code == 200


def test_jobs_refuse_the_spec_that_validate_refuses(api: Api, sequence_dataset_id: str) -> None:
    spec = pool_then_conv(kernel_size=7)
    response = api.post("/v1/jobs", json={"dataset_id": sequence_dataset_id, "spec": spec})
    assert_invalid(response, "spec.model.layers[1].kernel_size")
    assert api.get("/v1/jobs").json()["total"] == 0


def test_rnn_family_on_a_plain_csv_is_422(api: Api, dataset_id: str) -> None:
    response = validate(api, dataset_id, {**CLASSIFY, "model": {"family": "rnn"}})
    error = assert_invalid(response, "spec.model.family")
    assert "sequence" in error["message"]


def test_target_that_is_not_a_column_is_422(api: Api, dataset_id: str) -> None:
    response = validate(api, dataset_id, {"task": "classification", "target": "lable"})
    error = assert_invalid(response, "spec.target")
    assert "'lable'" in error["message"]


def test_array_target_other_than_y_is_422(api: Api, sequence_dataset_id: str) -> None:
    response = validate(api, sequence_dataset_id, {**CLASSIFY_ARRAYS, "target": "label"})
    error = assert_invalid(response, "spec.target")
    assert "`y`" in error["message"]


def test_forecasting_window_longer_than_the_series_is_422(api: Api) -> None:
    dataset_id = upload(api, csv_bytes({"value": [float(i) for i in range(30)]}), "short.csv")
    spec = {"task": "forecasting", "target": "value", "data": {"window": 40}}
    error = assert_invalid(validate(api, dataset_id, spec), "dataset_id")
    assert error["code"] == "bad_dataset"
    assert "30 rows" in error["message"]


def test_validate_sees_every_class_of_a_dataset_sorted_by_class(api: Api) -> None:
    x = np.random.default_rng(0).normal(size=(5000, 4)).astype(np.float32)
    y = np.repeat([0, 1], 2500)
    dataset_id = upload(api, npz_bytes(x=x, y=y), "sorted.npz")
    response = validate(api, dataset_id, CLASSIFY_ARRAYS)
    assert response.status_code == 200, response.text
    assert response.json()["output_shape"] == [2]


def test_validate_on_unknown_dataset_is_404(api: Api) -> None:
    response = validate(api, "ds_doesnotexist", CLASSIFY)
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "not_found"
    assert "ds_doesnotexist" in error["message"]


def test_validate_on_another_projects_dataset_is_404(other_api: Api, dataset_id: str) -> None:
    response = validate(other_api, dataset_id, CLASSIFY)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_validate_without_key_is_401(backend: Backend, dataset_id: str) -> None:
    body = {"dataset_id": dataset_id, "spec": CLASSIFY}
    response = backend.client.post("/v1/specs/validate", json=body)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    wrong = backend.client.post(
        "/v1/specs/validate", json=body, headers={"Authorization": "Bearer ty_x"}
    )
    assert wrong.status_code == 401


def test_image_size_on_a_table_is_422_naming_the_field(api: Api, dataset_id: str) -> None:
    spec = {"task": "classification", "target": "label", "data": {"image_size": [8, 8]}}
    assert_invalid(validate(api, dataset_id, spec), "spec.data.image_size")


def test_a_loss_that_does_not_fit_the_task_is_422_naming_it(api: Api, dataset_id: str) -> None:
    spec = {"task": "classification", "target": "label", "training": {"loss": "mse"}}
    assert_invalid(validate(api, dataset_id, spec), "spec.training.loss")
