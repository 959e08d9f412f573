"""Batch predictions for array models (images, sequences) over NPZ datasets and for
forecasting models over a stored series, through the real routes and a run in this process;
pairs that cannot go together are refused at submit naming the mismatch."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from service.jobs.training_run import run_training_job
from tests.conftest import Api, Backend, assert_invalid
from tests.sample_data import csv_bytes, npz_bytes
from tests.service.conftest import worker_resources


def _upload(api: Api, content: bytes, filename: str) -> str:
    response = api.upload(content, filename)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _train(backend: Backend, api: Api, dataset_id: str, spec: dict) -> str:
    submitted = api.post("/v1/jobs", json={"dataset_id": dataset_id, "spec": spec})
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["id"]
    assert run_training_job(worker_resources(backend), job_id) == "succeeded"
    return api.get(f"/v1/jobs/{job_id}").json()["model_id"]


def _images(n: int = 80, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.repeat([3, 7], n // 2)
    x = np.where(y == 7, 200, 40)[:, None, None] + rng.integers(-30, 30, (n, 8, 8))
    return x.astype(np.uint8), y


SERIES = (5 + 3 * np.sin(np.arange(120) * 2 * np.pi / 25)).tolist()


@pytest.fixture(scope="module")
def owner(backend: Backend) -> Api:
    return Api(backend.client, backend.new_project_key())


@pytest.fixture(scope="module")
def images(owner: Api) -> str:
    x, y = _images()
    return _upload(owner, npz_bytes(x=x, y=y), "shades.npz")


@pytest.fixture(scope="module")
def image_model(backend: Backend, owner: Api, images: str) -> str:
    spec = {
        "task": "classification",
        "target": "y",
        "model": {"family": "cnn", "filters": [4]},
        "training": {"epochs": 6, "learning_rate": 0.01},
    }
    return _train(backend, owner, images, spec)


@pytest.fixture(scope="module")
def series(owner: Api) -> str:
    return _upload(owner, csv_bytes({"day": list(range(120)), "value": SERIES}), "sine.csv")


@pytest.fixture(scope="module")
def forecaster(backend: Backend, owner: Api, series: str) -> str:
    spec = {
        "task": "forecasting",
        "target": "value",
        "features": ["day"],
        "model": {"family": "rnn", "cell": "gru", "hidden": 8},
        "data": {"window": 10, "horizon": 2},
        "training": {"epochs": 3},
    }
    return _train(backend, owner, series, spec)


def _run(backend: Backend, owner: Api, model: str, **body) -> pa.Table:
    from service.batch_predictions.prediction_run import run_batch_prediction

    response = owner.post(f"/v1/models/{model}/batch-predictions", json=body)
    assert response.status_code == 202, response.text
    batch_id = response.json()["id"]
    assert run_batch_prediction(worker_resources(backend), batch_id, chunk_rows=16) == "succeeded"
    done = owner.get(f"/v1/batch-predictions/{batch_id}").json()
    assert done["progress"]["rows_done"] == done["progress"]["rows_total"]
    result = owner.get(f"/v1/batch-predictions/{batch_id}/result")
    assert result.status_code == 200, result.text
    if body.get("format") == "csv":
        import pyarrow.csv as pacsv

        return pacsv.read_csv(io.BytesIO(result.content))
    return pq.read_table(io.BytesIO(result.content))


def test_an_image_model_predicts_every_x_of_an_npz(
    backend: Backend, owner: Api, images: str, image_model: str
) -> None:
    x, _ = _images()
    table = _run(backend, owner, image_model, dataset_id=images, format="csv")
    assert table.column_names == ["row", "label", "probability_3", "probability_7"]
    assert table.column("row").to_pylist() == list(range(80))
    # The same answers as predict gives for those images.
    predicted = owner.post(
        f"/v1/models/{image_model}/predict", json={"instances": x[:20].tolist()}
    ).json()["predictions"]
    assert table.column("label").to_pylist()[:20] == [p["label"] for p in predicted]
    assert table.column("probability_7").to_pylist()[:20] == pytest.approx(
        [p["probabilities"]["7"] for p in predicted], abs=1e-5
    )


def test_a_forecaster_predicts_after_every_window_of_the_series(
    backend: Backend, owner: Api, series: str, forecaster: str
) -> None:
    table = _run(backend, owner, forecaster, dataset_id=series, id_column="day")
    assert table.column_names == ["row", "day", "value_1", "value_2"]
    # Windows of 10 rows: the first ends at row 9, the last at the series' last row (119).
    assert table.num_rows == 111
    assert table.column("row").to_pylist() == list(range(9, 120))
    assert table.column("day").to_pylist() == list(range(9, 120))
    window = [[v, day] for day, v in enumerate(SERIES) if day >= 110]
    [last] = owner.post(f"/v1/models/{forecaster}/predict", json={"instances": [window]}).json()[
        "predictions"
    ]
    assert [table.column("value_1")[-1].as_py(), table.column("value_2")[-1].as_py()] == (
        pytest.approx(last["values"], abs=1e-5)
    )


def test_a_table_dataset_for_an_image_model_is_409_naming_both(
    owner: Api, image_model: str, series: str
) -> None:
    response = owner.post(
        f"/v1/models/{image_model}/batch-predictions", json={"dataset_id": series}
    )
    assert response.status_code == 409, response.text
    error = response.json()["error"]
    assert error["code"] == "kind_mismatch"
    assert "reads arrays" in error["message"] and "holds table" in error["message"]


def test_an_npz_for_a_forecaster_is_409(owner: Api, forecaster: str, images: str) -> None:
    response = owner.post(f"/v1/models/{forecaster}/batch-predictions", json={"dataset_id": images})
    assert response.status_code == 409, response.text


def test_images_of_another_shape_are_422_on_dataset_id(owner: Api, image_model: str) -> None:
    x = np.zeros((4, 6, 6), np.uint8)
    other = _upload(owner, npz_bytes(x=x, y=np.array([3, 7, 3, 7])), "small.npz")
    response = owner.post(f"/v1/models/{image_model}/batch-predictions", json={"dataset_id": other})
    error = assert_invalid(response, "dataset_id")
    assert "[1, 6, 6]" in error["message"] and "[1, 8, 8]" in error["message"]


def test_an_id_column_on_arrays_is_422(owner: Api, image_model: str, images: str) -> None:
    response = owner.post(
        f"/v1/models/{image_model}/batch-predictions",
        json={"dataset_id": images, "id_column": "id"},
    )
    assert_invalid(response, "id_column")


def test_a_series_shorter_than_a_window_is_422(owner: Api, forecaster: str) -> None:
    short = _upload(owner, csv_bytes({"day": list(range(5)), "value": SERIES[:5]}), "short.csv")
    response = owner.post(f"/v1/models/{forecaster}/batch-predictions", json={"dataset_id": short})
    error = assert_invalid(response, "dataset_id")
    assert "windows of 10" in error["message"]
