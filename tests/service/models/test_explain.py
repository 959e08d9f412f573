"""POST /v1/models/{ref}/explain through the real route: models trained for a few epochs by a
real job, then explained per raw column, per image pixel and per forecast window step; each
refusal with its status and field."""

from __future__ import annotations

import numpy as np
import pytest

from service.jobs.training_run import run_training_job
from tests.conftest import Api, Backend, assert_invalid
from tests.sample_data import csv_bytes, linear_regression, mixed_classification, npz_bytes
from tests.service.conftest import worker_resources

ROW = {"x1": 1.5, "x2": -0.5, "colour": "red"}


def _train(backend: Backend, api: Api, content: bytes, filename: str, spec: dict) -> str:
    upload = api.upload(content, filename)
    assert upload.status_code == 201, upload.text
    submitted = api.post("/v1/jobs", json={"dataset_id": upload.json()["id"], "spec": spec})
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["id"]
    assert run_training_job(worker_resources(backend), job_id) == "succeeded"
    return api.get(f"/v1/jobs/{job_id}").json()["model_id"]


@pytest.fixture(scope="module")
def owner(backend: Backend) -> Api:
    return Api(backend.client, backend.new_project_key())


@pytest.fixture(scope="module")
def classifier(backend: Backend, owner: Api) -> str:
    spec = {"task": "classification", "target": "label", "training": {"epochs": 15}}
    return _train(backend, owner, csv_bytes(mixed_classification()), "mixed.csv", spec)


def explain(api: Api, model_id: str, **body):
    return api.post(f"/v1/models/{model_id}/explain", json=body)


def test_a_table_model_is_explained_per_raw_column(owner: Api, classifier: str) -> None:
    response = explain(owner, classifier, instances=[ROW, ROW], n_steps=16)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["model_id"] == classifier
    assert answer["method"] == "integrated_gradients" and answer["n_steps"] == 16
    assert "training fills" in answer["baseline"]
    [first, second] = answer["explanations"]
    assert set(first["attributions"]) == {"x1", "x2", "colour"}
    assert first["target"] == first["prediction"]["label"] == "yes"
    assert first["attributions"] == pytest.approx(second["attributions"], abs=1e-5)
    # x1 (positive, informative) pushes towards "yes".
    assert first["attributions"]["x1"] > 0


def test_a_requested_class_is_explained(owner: Api, classifier: str) -> None:
    response = explain(owner, classifier, instances=[ROW], target="no")
    assert response.status_code == 200, response.text
    assert response.json()["explanations"][0]["target"] == "no"


def test_an_unknown_class_is_422_on_target(owner: Api, classifier: str) -> None:
    error = assert_invalid(explain(owner, classifier, instances=[ROW], target="maybe"), "target")
    assert "'maybe' is not a class" in error["message"]


def test_bad_options_are_422_naming_the_field(owner: Api, classifier: str) -> None:
    assert_invalid(explain(owner, classifier, instances=[ROW], n_steps=1000), "n_steps")
    assert_invalid(explain(owner, classifier, instances=[ROW] * 33), "instances")
    assert_invalid(explain(owner, classifier, instances=[]), "instances")
    assert_invalid(explain(owner, classifier, instances=[ROW], steps=3), "steps")
    assert_invalid(explain(owner, classifier, instances=[{"x1": 1.0}]), "instances[0].x2")


def test_unknown_model_is_404_and_no_key_is_401(backend: Backend, owner: Api) -> None:
    assert explain(owner, "mdl_nope", instances=[ROW]).status_code == 404
    response = backend.client.post("/v1/models/mdl_nope/explain", json={"instances": [ROW]})
    assert response.status_code == 401


def test_another_projects_model_is_404(backend: Backend, classifier: str) -> None:
    stranger = Api(backend.client, backend.new_project_key())
    assert explain(stranger, classifier, instances=[ROW]).status_code == 404


def test_an_autoencoder_is_409(backend: Backend, owner: Api) -> None:
    spec = {"task": "reconstruction", "training": {"epochs": 3}}
    model_id = _train(backend, owner, csv_bytes(linear_regression(80)), "recon.csv", spec)
    response = explain(owner, model_id, instances=[{"a": 0.1, "b": 0.2, "y": 1.0}])
    assert response.status_code == 409, response.text
    assert response.json()["error"]["code"] == "not_explainable"


def test_an_image_model_gets_a_saliency_map(backend: Backend, owner: Api) -> None:
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 40)
    x = np.where(y == 1, 200, 40)[:, None, None] + rng.integers(-30, 30, (80, 8, 8))
    spec = {
        "task": "classification",
        "target": "y",
        "model": {"family": "cnn", "filters": [4]},
        "training": {"epochs": 4},
    }
    model_id = _train(backend, owner, npz_bytes(x=x.astype(np.uint8), y=y), "img.npz", spec)
    response = explain(owner, model_id, instances=[x[0].tolist()], target=1)
    assert response.status_code == 200, response.text
    saliency = response.json()["explanations"][0]["attributions"]
    assert np.array(saliency).shape == (8, 8)


def test_a_forecasting_model_is_explained_per_window_step(backend: Backend, owner: Api) -> None:
    series = (5 + 3 * np.sin(np.arange(200) * 2 * np.pi / 25)).tolist()
    spec = {
        "task": "forecasting",
        "target": "value",
        "model": {"family": "rnn", "cell": "gru", "hidden": 8},
        "data": {"window": 10, "horizon": 2},
        "training": {"epochs": 3},
    }
    model_id = _train(backend, owner, csv_bytes({"value": series}), "sine.csv", spec)
    window = [[v] for v in series[:10]]
    response = explain(owner, model_id, instances=[window], target=2)
    assert response.status_code == 200, response.text
    explanation = response.json()["explanations"][0]
    assert len(explanation["attributions"]) == 10
    assert explanation["channels"] == ["value"] and explanation["target"] == 2
    assert_invalid(explain(owner, model_id, instances=[window], target=3), "target")


def test_the_job_report_carries_permutation_importance(owner: Api, classifier: str) -> None:
    job_id = owner.get(f"/v1/models/{classifier}").json()["job_id"]
    report = owner.get(f"/v1/jobs/{job_id}").json()["report"]["permutation_importance"]
    assert report["metric"] == "accuracy" and report["repeats"] == 5
    assert {row["feature"] for row in report["importances"]} == {"x1", "x2", "colour"}
