"""Data as the user splits it, through the API: a job names its own validation and test
datasets (checked at submit against the training dataset), or trains on every row with
data.split.validation 0; on table, array and sequence data."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import Api, assert_invalid
from tests.sample_data import csv_bytes, mixed_classification, noisy_sine_sequences, npz_bytes

QUICK = {"epochs": 3, "learning_rate": 0.01, "device": "cpu"}
NO_STOPPING = {**QUICK, "early_stopping": None}


def _upload(api: Api, content: bytes, name: str) -> str:
    response = api.upload(content, name)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _table(api: Api, n: int, seed: int, name: str = "rows.csv", **changes) -> str:
    columns = mixed_classification(n=n, seed=seed)
    for column, values in changes.items():
        if values is None:
            del columns[column]
        else:
            columns[column] = values
    return _upload(api, csv_bytes(columns), name)


def _post_job(api: Api, dataset_id: str, spec: dict | None = None, **body):
    spec = {"task": "classification", "target": "label", "training": QUICK, **(spec or {})}
    return api.post("/v1/jobs", json={"dataset_id": dataset_id, "spec": spec, **body})


def _succeeded(api: Api, run_job, response) -> dict:
    assert response.status_code == 202, response.text
    job = response.json()
    assert run_job(job["id"]) == "succeeded", api.get(f"/v1/jobs/{job['id']}").text
    return api.get(f"/v1/jobs/{job['id']}").json()


def test_a_table_job_trains_on_every_row_and_reports_on_the_given_test_set(
    api: Api, run_job
) -> None:
    train_id = _table(api, 160, seed=1, name="train.csv")
    validation_id = _table(api, 50, seed=2, name="validation.csv")
    test_id = _table(api, 60, seed=3, name="test.csv")

    response = _post_job(
        api, train_id, validation_dataset_id=validation_id, test_dataset_id=test_id
    )
    assert response.json()["validation_dataset_id"] == validation_id
    assert response.json()["test_dataset_id"] == test_id
    job = _succeeded(api, run_job, response)

    report = job["report"]
    assert report["rows"] == {"train": 160, "validation": 50, "test": 60}
    evaluation = report["evaluation"]
    assert evaluation["rows"] == 60
    assert {"accuracy", "balanced_accuracy", "f1_macro", "roc_auc"} <= set(evaluation["metrics"])
    assert sum(map(sum, evaluation["confusion_matrix"]["matrix"])) == 60
    # Early stopping watched the given validation set.
    assert "val_loss" in job["metrics"]


def test_a_given_test_set_alone_leaves_the_validation_split_to_the_training_set(
    api: Api, run_job
) -> None:
    train_id = _table(api, 100, seed=1)
    test_id = _table(api, 40, seed=2)
    job = _succeeded(api, run_job, _post_job(api, train_id, test_dataset_id=test_id))
    rows = job["report"]["rows"]
    assert rows["test"] == 40
    assert rows["train"] + rows["validation"] == 100 and rows["validation"] > 0


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"colour": None}, "lacks column 'colour'"),
        ({"x1": ["a"] * 30}, "column 'x1' is categorical here and numeric"),
    ],
)
def test_a_given_dataset_without_the_columns_the_spec_reads_is_422(
    api: Api, changes: dict, reason: str
) -> None:
    train_id = _table(api, 80, seed=1)
    test_id = _table(api, 30, seed=2, **changes)
    error = assert_invalid(_post_job(api, train_id, test_dataset_id=test_id), "test_dataset_id")
    assert error["code"] == "dataset_mismatch"
    assert reason in error["message"]


def test_a_given_dataset_of_another_project_or_none_is_422(api: Api, other_api: Api) -> None:
    train_id = _table(api, 80, seed=1)
    theirs = _table(other_api, 30, seed=2)
    for given in (theirs, "ds_nope"):
        response = _post_job(api, train_id, validation_dataset_id=given)
        error = assert_invalid(response, "validation_dataset_id")
        assert error["code"] == "dataset_not_found"
        assert f"no dataset {given!r} in this project" in error["message"]


def test_arrays_as_a_given_test_set_for_a_table_is_422(api: Api) -> None:
    train_id = _table(api, 80, seed=1)
    arrays = npz_bytes(x=np.zeros((10, 3), dtype=np.float32), y=np.arange(10) % 2)
    test_id = _upload(api, arrays, "arrays.npz")
    error = assert_invalid(_post_job(api, train_id, test_dataset_id=test_id), "test_dataset_id")
    assert "holds arrays" in error["message"]


def test_validation_zero_is_refused_while_early_stopping_needs_it(api: Api) -> None:
    train_id = _table(api, 80, seed=1)
    spec = {"training": QUICK, "data": {"split": {"validation": 0}}}
    error = assert_invalid(_post_job(api, train_id, spec), "spec.data.split.validation")
    assert "early stopping needs validation rows" in error["message"]
    spec["training"] = {**NO_STOPPING, "schedule": {"type": "reduce_on_plateau"}}
    error = assert_invalid(_post_job(api, train_id, spec), "spec.data.split.validation")
    assert "reduce_on_plateau" in error["message"]
    # A given validation set is what early stopping then watches.
    validation_id = _table(api, 30, seed=2)
    response = _post_job(
        api, train_id, spec | {"training": QUICK}, validation_dataset_id=validation_id
    )
    assert response.status_code == 202, response.text


def test_validation_zero_trains_every_non_test_row_for_the_given_epochs(api: Api, run_job) -> None:
    train_id = _table(api, 120, seed=1)
    spec = {"training": NO_STOPPING, "data": {"split": {"validation": 0, "test": 0.2}}}
    job = _succeeded(api, run_job, _post_job(api, train_id, spec))
    rows = job["report"]["rows"]
    assert rows["validation"] == 0 and rows["train"] + rows["test"] == 120
    epochs = api.get(f"/v1/jobs/{job['id']}/metrics").json()["epochs"]
    assert [e["epoch"] for e in epochs] == [1, 2, 3]
    assert "train_loss" in epochs[-1]["values"] and "val_loss" not in epochs[-1]["values"]


def _vectors(n: int, seed: int, width: int = 6) -> bytes:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    x = (rng.normal(size=(n, width)) + y[:, None] * 1.5).astype(np.float32)
    return npz_bytes(x=x, y=np.array(["a", "b"])[y])


def test_an_array_job_takes_a_given_test_set_of_the_same_shape(api: Api, run_job) -> None:
    train_id = _upload(api, _vectors(120, 1), "train.npz")
    test_id = _upload(api, _vectors(40, 2), "test.npz")
    spec = {"target": "y", "training": NO_STOPPING, "data": {"split": {"validation": 0}}}
    job = _succeeded(api, run_job, _post_job(api, train_id, spec, test_dataset_id=test_id))
    assert job["report"]["rows"] == {"train": 120, "validation": 0, "test": 40}
    assert job["report"]["evaluation"]["confusion_matrix"]["labels"] == ["a", "b"]

    wider = _upload(api, _vectors(40, 3, width=7), "wider.npz")
    error = assert_invalid(_post_job(api, train_id, spec, test_dataset_id=wider), "test_dataset_id")
    assert "x has shape [7] per row; the training dataset's has [6]" in error["message"]


def test_a_sequence_job_takes_given_validation_and_test_sets(api: Api, run_job) -> None:
    train_id = _upload(api, npz_bytes(**noisy_sine_sequences(80, steps=32, seed=1)), "t.npz")
    validation_id = _upload(api, npz_bytes(**noisy_sine_sequences(20, steps=32, seed=2)), "v.npz")
    test_id = _upload(api, npz_bytes(**noisy_sine_sequences(30, steps=32, seed=3)), "s.npz")
    spec = {"target": "y", "model": {"family": "cnn"}}
    job = _succeeded(
        api,
        run_job,
        _post_job(
            api, train_id, spec, validation_dataset_id=validation_id, test_dataset_id=test_id
        ),
    )
    assert job["report"]["rows"] == {"train": 80, "validation": 20, "test": 30}

    shorter = _upload(api, npz_bytes(**noisy_sine_sequences(20, steps=16, seed=4)), "short.npz")
    error = assert_invalid(
        _post_job(api, train_id, spec, test_dataset_id=shorter), "test_dataset_id"
    )
    assert "x has shape [16, 1] per row" in error["message"]


def _series(n: int, offset: float) -> bytes:
    t = np.arange(n, dtype=np.float64)
    return csv_bytes({"value": (np.sin(t / 5.0) * 3 + offset).tolist()})


def test_a_forecasting_job_scores_a_given_test_series_per_horizon_step(api: Api, run_job) -> None:
    train_id = _upload(api, _series(150, 0.0), "train.csv")
    test_id = _upload(api, _series(40, 0.5), "test.csv")
    spec = {
        "task": "forecasting",
        "target": "value",
        "training": NO_STOPPING,
        "data": {"window": 8, "horizon": 2, "split": {"validation": 0}},
    }
    job = _succeeded(api, run_job, _post_job(api, train_id, spec, test_dataset_id=test_id))
    evaluation = job["report"]["evaluation"]
    assert evaluation["rows"] == 40 - 8 - 2 + 1
    assert [step["step"] for step in evaluation["per_horizon"]] == [1, 2]
    assert {"mae", "rmse", "r2"} <= set(evaluation["metrics"])
