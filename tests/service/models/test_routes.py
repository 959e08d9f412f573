from __future__ import annotations

import math

from service.jobs.training_run import run_training_job
from tests.conftest import Api, Backend, assert_invalid, running_backend
from tests.sample_data import csv_bytes, linear_regression, mixed_classification
from tests.service.conftest import worker_resources
from tests.service.models.calls import answer_from, predict

# Far on either side of the decision boundary of mixed_classification (x1 + x2 + red bonus).
CLEARLY_YES = {"x1": 2.5, "x2": 2.5, "colour": "red"}
CLEARLY_NO = {"x1": -2.5, "x2": -2.5, "colour": "blue"}


def rows(columns: dict[str, list]) -> list[dict]:
    names = list(columns)
    return [dict(zip(names, values, strict=True)) for values in zip(*columns.values(), strict=True)]


# --- list and get -----------------------------------------------------------------------------


def test_list_models(api: Api, other_api: Api, trained_model_id: str) -> None:
    response = api.get("/v1/models")
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["total"] == 1
    # Names, not records: the dataset's name, with its one version.
    [entry] = page["items"]
    assert entry["name"] == "mixed"
    assert entry["latest_version"] == 1
    assert entry["versions"] == 1
    assert entry["aliases"] == {}
    assert entry["created_at"] == entry["updated_at"]
    assert other_api.get("/v1/models").json() == {
        "items": [],
        "total": 0,
        "limit": 50,
        "offset": 0,
    }


def test_list_models_without_key_is_401(backend: Backend) -> None:
    response = backend.client.get("/v1/models")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


def test_get_model(api: Api, dataset_id: str, trained_model_id: str) -> None:
    response = api.get(f"/v1/models/{trained_model_id}")
    assert response.status_code == 200, response.text
    model = response.json()
    assert model["id"] == trained_model_id
    assert model["name"] == "mixed"
    assert model["version"] == 1
    assert model["task"] == "classification"
    assert model["dataset_id"] == dataset_id
    job = api.get(f"/v1/jobs/{model['job_id']}").json()
    assert job["model_id"] == trained_model_id
    assert {"val_loss", "val_accuracy"} <= set(model["metrics"])


def test_get_unknown_model_is_404(api: Api) -> None:
    response = api.get("/v1/models/mdl_doesnotexist")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "not_found"
    assert "mdl_doesnotexist" in error["message"]


def test_get_another_projects_model_is_404(other_api: Api, trained_model_id: str) -> None:
    response = other_api.get(f"/v1/models/{trained_model_id}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_get_model_without_key_is_401(backend: Backend, trained_model_id: str) -> None:
    assert backend.client.get(f"/v1/models/{trained_model_id}").status_code == 401


# --- predict ----------------------------------------------------------------------------------


def test_predict_classification(api: Api, trained_model_id: str) -> None:
    response = predict(api, trained_model_id, [CLEARLY_YES, CLEARLY_NO, CLEARLY_YES])
    predictions = answer_from(trained_model_id, response)["predictions"]
    # One prediction per instance, in the order sent.
    assert [p["label"] for p in predictions] == ["yes", "no", "yes"]
    for p in predictions:
        assert set(p["probabilities"]) == {"yes", "no"}
        assert math.isclose(sum(p["probabilities"].values()), 1.0, abs_tol=1e-5)
        assert p["probabilities"][p["label"]] == max(p["probabilities"].values())
        assert "value" not in p


def test_predict_is_mostly_right_on_the_training_rows(api: Api, trained_model_id: str) -> None:
    columns = mixed_classification()
    instances = rows(columns)  # with the label column too: extra columns are ignored
    response = predict(api, trained_model_id, instances)
    assert response.status_code == 200, response.text
    labels = [p["label"] for p in response.json()["predictions"]]
    assert len(labels) == len(instances)
    correct = sum(a == b for a, b in zip(labels, columns["label"], strict=True))
    assert correct / len(labels) >= 0.8


def test_predict_regression_is_close_to_the_truth(api: Api, submit, run_job) -> None:
    upload = api.upload(csv_bytes(linear_regression()), "linear.csv")
    assert upload.status_code == 201, upload.text
    job = submit(upload.json()["id"], task="regression", target="y", training={"epochs": 60})
    assert run_job(job["id"]) == "succeeded"
    model_id = api.get(f"/v1/jobs/{job['id']}").json()["model_id"]

    points = [(0.0, 0.0), (1.0, -1.0), (-1.0, 1.5)]
    response = predict(api, model_id, [{"a": a, "b": b} for a, b in points])
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert len(predictions) == len(points)
    for (a, b), p in zip(points, predictions, strict=True):
        assert "label" not in p and "probabilities" not in p
        truth = 3.0 * a - 2.0 * b + 10.0
        assert abs(p["value"] - truth) < 0.5, (a, b, p["value"], truth)


def test_predict_with_null_and_unseen_category(api: Api, trained_model_id: str) -> None:
    instances = [
        {"x1": 0.3, "x2": None, "colour": "purple"},
        {"x1": None, "x2": 1.0, "colour": None},
        {"x1": 12, "x2": -40, "colour": "red"},  # raw, un-scaled integers
    ]
    response = predict(api, trained_model_id, instances)
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert len(predictions) == 3
    for p in predictions:
        assert p["label"] in ("yes", "no")
        assert math.isclose(sum(p["probabilities"].values()), 1.0, abs_tol=1e-5)


def test_predict_missing_column_is_422(api: Api, trained_model_id: str) -> None:
    response = predict(api, trained_model_id, [CLEARLY_YES, {"x2": 0.1, "colour": "red"}])
    error = assert_invalid(response, "instances[1].x1")
    assert error["code"] == "invalid_instances"
    assert "x1" in error["message"]


def test_predict_wrong_type_is_422(api: Api, trained_model_id: str) -> None:
    response = predict(api, trained_model_id, [{"x1": "tall", "x2": 0.1, "colour": "red"}])
    error = assert_invalid(response, "instances[0].x1")
    assert "number" in error["message"]


def test_predict_boolean_for_a_number_is_422(api: Api, trained_model_id: str) -> None:
    response = predict(api, trained_model_id, [{"x1": True, "x2": 0.1, "colour": "red"}])
    assert_invalid(response, "instances[0].x1")


def test_predict_empty_instances_is_422(api: Api, trained_model_id: str) -> None:
    assert_invalid(predict(api, trained_model_id, []), "instances")


def test_predict_instance_that_is_not_an_object_is_422(api: Api, trained_model_id: str) -> None:
    assert_invalid(predict(api, trained_model_id, [CLEARLY_YES, 7]), "instances[1]")


def test_predict_over_the_row_limit_is_413(tmp_path) -> None:
    with running_backend("sqlite", tmp_path, max_predict_rows=2) as small:
        api = Api(small.client, small.new_project_key())
        upload = api.upload(csv_bytes(mixed_classification(n=60)), "mixed.csv")
        spec = {"task": "classification", "target": "label", "training": {"epochs": 3}}
        job = api.post("/v1/jobs", json={"dataset_id": upload.json()["id"], "spec": spec}).json()
        assert run_training_job(worker_resources(small), job["id"]) == "succeeded"
        model_id = api.get(f"/v1/jobs/{job['id']}").json()["model_id"]

        assert predict(api, model_id, [CLEARLY_YES, CLEARLY_NO]).status_code == 200
        response = predict(api, model_id, [CLEARLY_YES, CLEARLY_NO, CLEARLY_YES])
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "too_large"
    assert "limit of 2" in error["message"]
    assert error["details"][0]["field"] == "instances"


def test_predict_unknown_model_is_404(api: Api) -> None:
    response = predict(api, "mdl_doesnotexist", [CLEARLY_YES])
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_predict_another_projects_model_is_404(other_api: Api, trained_model_id: str) -> None:
    response = predict(other_api, trained_model_id, [CLEARLY_YES])
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_predict_without_key_is_401(backend: Backend, trained_model_id: str) -> None:
    response = backend.client.post(
        f"/v1/models/{trained_model_id}/predict", json={"instances": [CLEARLY_YES]}
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
