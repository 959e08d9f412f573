"""`POST /v1/models/{ref}/evaluations`: a registered model scored on a stored labelled dataset as
leased work, with the metrics of a job's test report, for every kind of model; listed under the
model version, so versions compare on the same hold-out."""

from __future__ import annotations

import numpy as np
import pytest

from client import parse_events
from service.core.queue import EVALUATE_MODEL_TASK
from service.evaluations.repository import evaluations
from service.evaluations.tables import Evaluation
from tests.conftest import Api, Backend, assert_invalid
from tests.sample_data import (
    csv_bytes,
    linear_regression,
    mixed_classification,
    noisy_sine_sequences,
    npz_bytes,
)
from tests.service.leases import claim_then_vanish, reconcile, resend, sent_an_hour_ago

QUICK = {"epochs": 3, "learning_rate": 0.01, "device": "cpu", "early_stopping": None}


def _upload(api: Api, content: bytes, name: str) -> str:
    response = api.upload(content, name)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _train(api: Api, run_job, dataset_id: str, spec: dict, **body) -> dict:
    spec = {"training": QUICK, **spec}
    response = api.post("/v1/jobs", json={"dataset_id": dataset_id, "spec": spec, **body})
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    assert run_job(job_id) == "succeeded", api.get(f"/v1/jobs/{job_id}").text
    return api.get(f"/v1/jobs/{job_id}").json()


def _evaluate(api: Api, ref: str, dataset_id: str):
    return api.post(f"/v1/models/{ref}/evaluations", json={"dataset_id": dataset_id})


def _scored(api: Api, run_eval, ref: str, dataset_id: str) -> dict:
    response = _evaluate(api, ref, dataset_id)
    assert response.status_code == 202, response.text
    evaluation = response.json()
    assert evaluation["status"] == "queued" and evaluation["report"] is None
    assert run_eval(evaluation["id"]) == "succeeded"
    done = api.get(f"/v1/evaluations/{evaluation['id']}").json()
    assert done["status"] == "succeeded", done
    return done


@pytest.fixture
def table_model(api: Api, run_job) -> dict:
    """A classifier trained on one table and tested on a given one: (job, test dataset id)."""
    train_id = _upload(api, csv_bytes(mixed_classification(n=160, seed=1)), "churn.csv")
    test_id = _upload(api, csv_bytes(mixed_classification(n=60, seed=2)), "holdout.csv")
    spec = {"task": "classification", "target": "label", "data": {"split": {"validation": 0}}}
    job = _train(api, run_job, train_id, spec, test_dataset_id=test_id)
    return {"job": job, "test_id": test_id, "model_id": job["model_id"]}


def test_a_classifier_scores_a_stored_dataset_as_its_job_scored_the_same_rows(
    api: Api, run_eval, table_model: dict
) -> None:
    done = _scored(api, run_eval, table_model["model_id"], table_model["test_id"])

    assert done["id"].startswith("ev_")
    assert done["model_id"] == table_model["model_id"]
    assert (done["model_name"], done["model_version"]) == ("churn", 1)
    report = done["report"]
    job_report = table_model["job"]["report"]["evaluation"]
    # The same hold-out gives the same numbers as the job's test report.
    assert report["rows"] == job_report["rows"] == 60
    assert report["metrics"] == pytest.approx(job_report["metrics"])
    assert set(report["metrics"]) >= {"accuracy", "balanced_accuracy", "f1_macro", "roc_auc"}
    assert report["confusion_matrix"] == job_report["confusion_matrix"]


def test_evaluations_are_listed_under_the_model_version_and_by_dataset(
    api: Api, run_job, run_eval, table_model: dict
) -> None:
    test_id = table_model["test_id"]
    first = _scored(api, run_eval, "churn/versions/1", test_id)
    other_id = _upload(api, csv_bytes(mixed_classification(n=40, seed=9)), "other.csv")
    _scored(api, run_eval, "churn/versions/1", other_id)
    # A second version of the same name, scored on the same hold-out.
    train_id = _upload(api, csv_bytes(mixed_classification(n=100, seed=4)), "churn.csv")
    spec = {"task": "classification", "target": "label", "model_name": "churn"}
    _train(api, run_job, train_id, spec)
    second = _scored(api, run_eval, "churn/versions/2", test_id)

    listed = api.get("/v1/models/churn/versions/1/evaluations").json()
    assert listed["total"] == 2
    assert {e["model_version"] for e in listed["items"]} == {1}
    on_holdout = api.get(f"/v1/evaluations?dataset_id={test_id}").json()["items"]
    assert [e["id"] for e in on_holdout] == [second["id"], first["id"]]
    assert [e["model_version"] for e in on_holdout] == [2, 1]
    filtered = api.get(f"/v1/models/churn/versions/2/evaluations?dataset_id={test_id}").json()
    assert [e["id"] for e in filtered["items"]] == [second["id"]]
    # An alias names the version it points at now.
    response = api.client.put(
        "/v1/models/churn/aliases/production", json={"version": 1}, headers=api.headers
    )
    assert response.status_code == 200, response.text
    via_alias = api.get("/v1/models/churn@production/evaluations").json()
    assert via_alias["total"] == 2


def test_a_regressor_reports_rmse_mae_and_r2(api: Api, run_job, run_eval) -> None:
    train_id = _upload(api, csv_bytes(linear_regression(n=200, seed=1)), "prices.csv")
    holdout = _upload(api, csv_bytes(linear_regression(n=50, seed=2)), "prices-test.csv")
    job = _train(api, run_job, train_id, {"task": "regression", "target": "y"})
    report = _scored(api, run_eval, job["model_id"], holdout)["report"]
    assert report["rows"] == 50
    assert set(report["metrics"]) == {"mae", "rmse", "r2"}
    assert report["confusion_matrix"] is None


def test_an_autoencoder_reports_its_reconstruction_error(api: Api, run_job, run_eval) -> None:
    columns = linear_regression(n=120, seed=1)
    train_id = _upload(api, csv_bytes(columns), "signals.csv")
    job = _train(api, run_job, train_id, {"task": "reconstruction"})
    report = _scored(api, run_eval, job["model_id"], train_id)["report"]
    assert set(report["metrics"]) == {"reconstruction_error"}


def _vectors(n: int, seed: int, width: int = 6) -> bytes:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    x = (rng.normal(size=(n, width)) + y[:, None] * 1.5).astype(np.float32)
    return npz_bytes(x=x, y=np.array(["a", "b"])[y])


def test_array_and_sequence_models_score_stored_arrays(api: Api, run_job, run_eval) -> None:
    vectors = _upload(api, _vectors(120, 1), "vectors.npz")
    vector_job = _train(api, run_job, vectors, {"task": "classification", "target": "y"})
    report = _scored(api, run_eval, vector_job["model_id"], _upload(api, _vectors(30, 2), "v.npz"))[
        "report"
    ]
    assert report["rows"] == 30 and report["confusion_matrix"]["labels"] == ["a", "b"]

    sequences = _upload(api, npz_bytes(**noisy_sine_sequences(60, steps=32, seed=1)), "s.npz")
    spec = {"task": "classification", "target": "y", "model": {"family": "rnn"}}
    sequence_job = _train(api, run_job, sequences, spec)
    holdout = _upload(api, npz_bytes(**noisy_sine_sequences(25, steps=32, seed=2)), "h.npz")
    report = _scored(api, run_eval, sequence_job["model_id"], holdout)["report"]
    assert report["rows"] == 25 and "balanced_accuracy" in report["metrics"]

    # Arrays of another shape, or a table, cannot be scored: 422 naming dataset_id.
    shorter = _upload(api, npz_bytes(**noisy_sine_sequences(5, steps=16, seed=3)), "short.npz")
    error = assert_invalid(_evaluate(api, sequence_job["model_id"], shorter), "dataset_id")
    assert error["code"] == "dataset_mismatch"
    assert "x has shape [16, 1] per row; the model reads [32, 1]" in error["message"]
    table = _upload(api, csv_bytes(mixed_classification(n=20)), "rows.csv")
    error = assert_invalid(_evaluate(api, sequence_job["model_id"], table), "dataset_id")
    assert "the model reads arrays; the dataset is a table" in error["message"]


def _series(n: int, offset: float) -> bytes:
    t = np.arange(n, dtype=np.float64)
    return csv_bytes({"value": (np.sin(t / 5.0) * 3 + offset).tolist()})


def test_a_forecaster_reports_errors_per_horizon_step(api: Api, run_job, run_eval) -> None:
    train_id = _upload(api, _series(150, 0.0), "series.csv")
    spec = {"task": "forecasting", "target": "value", "data": {"window": 8, "horizon": 3}}
    job = _train(api, run_job, train_id, spec)
    report = _scored(api, run_eval, job["model_id"], _upload(api, _series(50, 0.3), "t.csv"))[
        "report"
    ]
    assert report["rows"] == 50 - 8 - 3 + 1
    assert [step["step"] for step in report["per_horizon"]] == [1, 2, 3]
    assert {"mae", "rmse", "r2"} <= set(report["metrics"])


def test_a_dataset_without_what_the_model_reads_is_422(api: Api, table_model: dict) -> None:
    for drop, reason in (("colour", "lacks column 'colour'"), ("label", "lacks column 'label'")):
        columns = mixed_classification(n=20)
        del columns[drop]
        dataset_id = _upload(api, csv_bytes(columns), f"no-{drop}.csv")
        error = assert_invalid(_evaluate(api, table_model["model_id"], dataset_id), "dataset_id")
        assert error["code"] == "dataset_mismatch" and reason in error["message"]
    arrays = _upload(api, _vectors(10, 1), "arrays.npz")
    error = assert_invalid(_evaluate(api, table_model["model_id"], arrays), "dataset_id")
    assert "the model reads table rows" in error["message"]
    response = api.post(f"/v1/models/{table_model['model_id']}/evaluations", json={})
    assert_invalid(response, "dataset_id")


def test_a_dataset_of_the_wrong_types_or_labels_is_422_saying_which(
    api: Api, run_job, table_model: dict
) -> None:
    # Checked from the dataset's record at the request, as the rows would be scored.
    columns = mixed_classification(n=20)
    columns["x1"] = [f"v{i}" for i in range(20)]
    texts = _upload(api, csv_bytes(columns), "texts.csv")
    error = assert_invalid(_evaluate(api, table_model["model_id"], texts), "dataset_id")
    assert "column 'x1' holds text; the model reads numbers there" in error["message"]

    classifier = _train(
        api,
        run_job,
        _upload(api, _vectors(60, 1), "v.npz"),
        {"task": "classification", "target": "y"},
    )
    x = np.random.default_rng(5).normal(size=(10, 6)).astype(np.float32)
    for arrays, reason in (
        ({"x": x, "y": np.linspace(0.0, 1.0, 10)}, "array `y` holds real numbers"),
        ({"x": x}, "the dataset has no `y` array to score against"),
    ):
        holdout = _upload(api, npz_bytes(**arrays), "holdout.npz")
        error = assert_invalid(_evaluate(api, classifier["model_id"], holdout), "dataset_id")
        assert reason in error["message"]


def test_unknown_models_datasets_and_evaluations_are_404_and_no_key_is_401(
    api: Api, other_api: Api, run_eval, table_model: dict
) -> None:
    assert _evaluate(api, "nope@production", table_model["test_id"]).status_code == 404
    assert _evaluate(api, table_model["model_id"], "ds_nope").status_code == 404
    assert api.get("/v1/evaluations/ev_nope").status_code == 404
    assert api.get("/v1/models/nope/versions/1/evaluations").status_code == 404
    done = _scored(api, run_eval, table_model["model_id"], table_model["test_id"])
    # Another project sees none of it.
    assert other_api.get(f"/v1/evaluations/{done['id']}").status_code == 404
    assert other_api.get("/v1/evaluations").json()["total"] == 0
    assert _evaluate(other_api, table_model["model_id"], table_model["test_id"]).status_code == 404
    assert api.client.get("/v1/evaluations").status_code == 401
    response = api.client.post(
        f"/v1/models/{table_model['model_id']}/evaluations",
        json={"dataset_id": table_model["test_id"]},
    )
    assert response.status_code == 401


def test_cancel_a_queued_evaluation_and_409_on_a_finished_one(
    api: Api, run_eval, table_model: dict
) -> None:
    queued = _evaluate(api, table_model["model_id"], table_model["test_id"]).json()
    cancelled = api.post(f"/v1/evaluations/{queued['id']}/cancel")
    assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled"
    assert run_eval(queued["id"]) == "skipped"
    again = api.post(f"/v1/evaluations/{queued['id']}/cancel")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "conflict"


def test_an_idempotency_key_creates_one_evaluation(api: Api, table_model: dict) -> None:
    headers = {**api.headers, "Idempotency-Key": "eval-once"}
    body = {"dataset_id": table_model["test_id"]}
    url = f"/v1/models/{table_model['model_id']}/evaluations"
    first = api.client.post(url, json=body, headers=headers)
    second = api.client.post(url, json=body, headers=headers)
    assert (first.status_code, second.status_code) == (202, 200)
    assert first.json()["id"] == second.json()["id"]


def test_an_evaluation_streams_its_status_then_ends(
    backend: Backend, api: Api, run_eval, table_model: dict
) -> None:
    done = _scored(api, run_eval, table_model["model_id"], table_model["test_id"])
    headers = {**api.headers, "Last-Event-ID": backend.app.state.events.start_id}
    path = f"/v1/evaluations/{done['id']}/events"
    with api.client.stream("GET", path, headers=headers) as response:
        assert response.status_code == 200
        events = list(parse_events(response.iter_lines()))
    types = [e.type for e in events]
    assert types[0] == "status" and "log" in types
    assert events[-1].type == "end" and events[-1].data == {"status": "succeeded"}


def test_the_reconciler_takes_back_an_evaluation_whose_worker_died(
    backend: Backend, api: Api, run_eval, table_model: dict, own_queue: str
) -> None:
    queued = _evaluate(api, table_model["model_id"], table_model["test_id"]).json()
    claim_then_vanish(backend, evaluations, Evaluation, queued["id"], queue=own_queue)

    assert queued["id"] in reconcile(backend).requeued
    assert api.get(f"/v1/evaluations/{queued['id']}").json()["status"] == "queued"
    assert backend.app.state.queue.pending(own_queue) == 1
    assert run_eval(queued["id"]) == "succeeded"
    assert api.get(f"/v1/evaluations/{queued['id']}").json()["attempts"] == 2


def test_a_queued_evaluation_whose_message_was_lost_is_sent_again(
    backend: Backend, api: Api, table_model: dict, own_queue: str
) -> None:
    queued = _evaluate(api, table_model["model_id"], table_model["test_id"]).json()
    sent_an_hour_ago(backend, Evaluation, queued["id"], own_queue)
    assert queued["id"] in resend(backend)
    assert backend.app.state.queue.pending(own_queue) == 1
    assert EVALUATE_MODEL_TASK == "trainyard.evaluate_model"
