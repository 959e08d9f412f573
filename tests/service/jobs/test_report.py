"""A succeeded job's report: rows per split, the leakage guard's counts, the test evaluation and
cross-validation, shown by GET /v1/jobs/{id}; data options that do not fit are refused at
submit."""

from __future__ import annotations

import pyarrow as pa

from tests.conftest import Api
from tests.sample_data import csv_bytes, mixed_classification


def _upload_with_repeated_rows(api: Api) -> str:
    columns = mixed_classification(n=120)
    table = pa.concat_tables([pa.table(columns), pa.table(columns).slice(0, 40)])
    response = api.upload(csv_bytes(table.to_pydict()), "repeated.csv")
    assert response.status_code == 201, response.text
    return response.json()["id"]


def test_a_succeeded_job_shows_its_evaluation_leakage_counts_and_folds(
    api: Api, submit, run_job
) -> None:
    dataset_id = _upload_with_repeated_rows(api)
    job = submit(dataset_id, training={"epochs": 3}, data={"split": {"folds": 2}})
    assert job["report"] is None

    assert run_job(job["id"]) == "succeeded"

    body = api.get(f"/v1/jobs/{job['id']}").json()
    report = body["report"]
    assert report["rows"]["train"] > 0 and report["rows"]["test"] > 0
    assert report["leakage_removed"]["validation"] + report["leakage_removed"]["test"] > 0
    evaluation = report["evaluation"]
    assert evaluation["rows"] == report["rows"]["test"]
    assert set(evaluation["metrics"]) == {
        "accuracy",
        "balanced_accuracy",
        "precision_macro",
        "recall_macro",
        "f1_macro",
        "roc_auc",
    }
    matrix = evaluation["confusion_matrix"]
    assert matrix["labels"] == ["no", "yes"]
    assert sum(map(sum, matrix["matrix"])) == evaluation["rows"]
    cv = report["cross_validation"]
    assert [f["fold"] for f in cv["folds"]] == [1, 2]
    assert set(cv["mean"]) == set(cv["std"]) == set(evaluation["metrics"])
    # The per-epoch history and the last progress are the final model's, not the folds'.
    epochs = api.get(f"/v1/jobs/{job['id']}/metrics").json()["epochs"]
    assert [e["epoch"] for e in epochs] == list(range(1, len(epochs) + 1))
    assert body["progress"]["fold"] is None


def test_the_report_says_where_auto_trained_and_at_what_precision(
    api: Api, dataset_id: str, submit, run_job
) -> None:
    job = submit(dataset_id, training={"epochs": 2, "device": "auto", "precision": "auto"})
    assert run_job(job["id"]) == "succeeded"
    compute = api.get(f"/v1/jobs/{job['id']}").json()["report"]["compute"]
    # No GPU here: auto is the CPU, and auto precision stays fp32 there (bf16 is slower).
    assert compute == {"device": "cpu", "device_name": "cpu", "precision": "fp32", "ranks": 1}

    asked = submit(dataset_id, training={"epochs": 2, "device": "cpu", "precision": "bf16"})
    assert run_job(asked["id"]) == "succeeded"
    assert api.get(f"/v1/jobs/{asked['id']}").json()["report"]["compute"]["precision"] == "bf16"


def test_repeated_folds_are_reported_repeat_by_repeat(api: Api, submit, run_job) -> None:
    dataset_id = _upload_with_repeated_rows(api)
    job = submit(dataset_id, training={"epochs": 2}, data={"split": {"folds": 2, "repeats": 2}})

    assert run_job(job["id"]) == "succeeded"

    cv = api.get(f"/v1/jobs/{job['id']}").json()["report"]["cross_validation"]
    assert cv["repeats"] == 2
    assert [(f["fold"], f["repeat"]) for f in cv["folds"]] == [(1, 1), (2, 1), (3, 2), (4, 2)]
    accuracies = [f["metrics"]["accuracy"] for f in cv["folds"]]
    assert abs(cv["mean"]["accuracy"] - sum(accuracies) / 4) < 1e-9


def test_repeats_without_folds_are_refused_naming_the_field(api: Api, dataset_id: str) -> None:
    spec = {"task": "classification", "target": "label", "data": {"split": {"repeats": 3}}}

    response = api.post("/v1/jobs", json={"dataset_id": dataset_id, "spec": spec})

    assert response.status_code == 422, response.text
    details = response.json()["error"]["details"]
    assert details[0]["field"] == "spec.data.split.repeats"
    assert "folds" in str(details[0])


def test_an_image_augmentation_on_a_table_is_refused_naming_the_field(
    api: Api, dataset_id: str
) -> None:
    spec = {
        "task": "classification",
        "target": "label",
        "data": {"augment": {"horizontal_flip": True}},
    }

    response = api.post("/v1/jobs", json={"dataset_id": dataset_id, "spec": spec})

    assert response.status_code == 422, response.text
    details = response.json()["error"]["details"]
    assert details[0]["field"] == "spec.data.augment.horizontal_flip"


def test_sampling_with_class_weights_is_refused_naming_the_field(api: Api, dataset_id: str) -> None:
    spec = {
        "task": "classification",
        "target": "label",
        "data": {"sampling": {"method": "oversample"}},
        "training": {"class_weights": "balanced"},
    }

    response = api.post("/v1/jobs", json={"dataset_id": dataset_id, "spec": spec})

    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"][0]["field"] == "spec.data.sampling.method"
