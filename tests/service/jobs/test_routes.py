from __future__ import annotations

from service.core.database import transaction
from service.jobs.repository import jobs
from tests.conftest import Api, Backend, assert_invalid
from tests.sample_data import csv_bytes, linear_regression


def create(api: Api, dataset_id: str, spec: dict):
    return api.post("/v1/jobs", json={"dataset_id": dataset_id, "spec": spec})


def upload(api: Api, columns: dict[str, list], filename: str = "data.csv") -> str:
    response = api.upload(csv_bytes(columns), filename)
    assert response.status_code == 201, response.text
    return response.json()["id"]


CLASSIFY = {"task": "classification", "target": "label"}


# --- create -----------------------------------------------------------------------------------


def test_create_job_is_queued(api: Api, dataset_id: str) -> None:
    response = create(api, dataset_id, {**CLASSIFY, "training": {"epochs": 5}})
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["id"].startswith("job")
    assert job["dataset_id"] == dataset_id
    assert job["status"] == "queued"
    assert job["attempts"] == 0
    assert job["queue"] == "cpu"
    assert job["model_id"] is None and job["error"] is None
    # The stored spec is the complete one, defaults filled in.
    assert job["spec"]["training"]["epochs"] == 5
    assert job["spec"]["training"]["optimizer"] == "adam"


def test_create_job_asking_for_cuda_goes_to_the_gpu_queue(api: Api, dataset_id: str) -> None:
    response = create(api, dataset_id, {**CLASSIFY, "training": {"device": "cuda"}})
    assert response.status_code == 202, response.text
    assert response.json()["queue"] == "gpu"


def test_a_job_needing_several_gpus_goes_where_only_machines_with_that_many_listen(
    api: Api, dataset_id: str
) -> None:
    spec = {**CLASSIFY, "training": {"device": "cuda", "resources": {"gpus": 4}}}
    response = create(api, dataset_id, spec)
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["queue"] == "gpu4"
    assert "asks for 4 CUDA devices on one machine" in job["waiting_reason"]


def test_create_job_without_key_is_401(backend: Backend, dataset_id: str) -> None:
    body = {"dataset_id": dataset_id, "spec": CLASSIFY}
    response = backend.client.post("/v1/jobs", json=body)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    wrong = backend.client.post("/v1/jobs", json=body, headers={"Authorization": "Bearer ty_x"})
    assert wrong.status_code == 401


def test_create_job_on_unknown_dataset_is_404(api: Api) -> None:
    response = create(api, "ds_doesnotexist", CLASSIFY)
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "not_found"
    assert "ds_doesnotexist" in error["message"]
    assert api.get("/v1/jobs").json()["total"] == 0


def test_create_job_on_another_projects_dataset_is_404(other_api: Api, dataset_id: str) -> None:
    response = create(other_api, dataset_id, CLASSIFY)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert other_api.get("/v1/jobs").json()["total"] == 0


def test_target_that_is_not_a_column_is_422(api: Api, dataset_id: str) -> None:
    response = create(api, dataset_id, {"task": "classification", "target": "lable"})
    error = assert_invalid(response, "spec.target")
    assert "'lable'" in error["message"]
    assert api.get("/v1/jobs").json()["total"] == 0


def test_feature_that_is_not_a_column_is_422(api: Api, dataset_id: str) -> None:
    response = create(api, dataset_id, {**CLASSIFY, "features": ["height", "x1"]})
    error = assert_invalid(response, "spec.features[0]")
    assert "'height'" in error["message"]


def test_unknown_optimizer_is_422(api: Api, dataset_id: str) -> None:
    response = create(api, dataset_id, {**CLASSIFY, "training": {"optimizer": "adamax"}})
    error = assert_invalid(response, "spec.training.optimizer")
    for name in ("sgd", "adam", "adamw", "rmsprop", "adagrad"):
        assert f"'{name}'" in error["message"]


def test_missing_task_is_422(api: Api, dataset_id: str) -> None:
    response = create(api, dataset_id, {"target": "label"})
    assert_invalid(response, "spec.task")


def test_misspelled_spec_field_is_422(api: Api, dataset_id: str) -> None:
    response = create(api, dataset_id, {**CLASSIFY, "training": {"epoch": 5}})
    error = assert_invalid(response, "spec.training.epoch")
    assert "not permitted" in error["message"]


def test_epochs_over_the_limit_is_422(api: Api, dataset_id: str) -> None:
    response = create(api, dataset_id, {**CLASSIFY, "training": {"epochs": 5000}})
    error = assert_invalid(response, "spec.training.epochs")
    assert "1000" in error["message"]
    assert api.get("/v1/jobs").json()["total"] == 0


def test_classification_on_a_real_valued_target_is_422(api: Api, dataset_id: str) -> None:
    response = create(api, dataset_id, {"task": "classification", "target": "x1"})
    error = assert_invalid(response, "spec.task")
    assert "regression" in error["message"]


def test_regression_on_a_text_target_is_422(api: Api, dataset_id: str) -> None:
    response = create(api, dataset_id, {"task": "regression", "target": "label"})
    error = assert_invalid(response, "spec.task")
    assert "numeric" in error["message"]


# --- get and list -----------------------------------------------------------------------------


def test_get_job(api: Api, dataset_id: str, submit) -> None:
    job = submit(dataset_id, training={"epochs": 5})
    response = api.get(f"/v1/jobs/{job['id']}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == job["id"]
    assert body["status"] == "queued"
    assert body["progress"] is None


def test_get_unknown_job_is_404(api: Api) -> None:
    response = api.get("/v1/jobs/job_doesnotexist")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_get_another_projects_job_is_404(other_api: Api, dataset_id: str, submit) -> None:
    job = submit(dataset_id)
    response = other_api.get(f"/v1/jobs/{job['id']}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert other_api.get(f"/v1/jobs/{job['id']}/metrics").status_code == 404
    assert other_api.post(f"/v1/jobs/{job['id']}/cancel").status_code == 404
    assert other_api.get("/v1/jobs").json()["total"] == 0


def test_get_job_without_key_is_401(backend: Backend, dataset_id: str, submit) -> None:
    job = submit(dataset_id)
    assert backend.client.get(f"/v1/jobs/{job['id']}").status_code == 401
    assert backend.client.get("/v1/jobs").status_code == 401


def test_list_jobs_filters_by_status(api: Api, dataset_id: str, submit) -> None:
    cancelled = submit(dataset_id)
    queued = submit(dataset_id)
    assert api.post(f"/v1/jobs/{cancelled['id']}/cancel").status_code == 202

    only_cancelled = api.get("/v1/jobs", params={"status": "cancelled"}).json()
    assert [j["id"] for j in only_cancelled["items"]] == [cancelled["id"]]
    assert only_cancelled["total"] == 1
    only_queued = api.get("/v1/jobs", params={"status": "queued"}).json()
    assert [j["id"] for j in only_queued["items"]] == [queued["id"]]
    everything = api.get("/v1/jobs").json()
    assert everything["total"] == 2
    assert {j["id"] for j in everything["items"]} == {cancelled["id"], queued["id"]}


def test_list_jobs_with_unknown_status_is_422(api: Api) -> None:
    response = api.get("/v1/jobs", params={"status": "done"})
    error = assert_invalid(response, "status")
    assert "succeeded" in error["message"]


# --- cancel -----------------------------------------------------------------------------------


def test_cancel_queued_job(api: Api, dataset_id: str, submit, run_job) -> None:
    job = submit(dataset_id, training={"epochs": 5})
    response = api.post(f"/v1/jobs/{job['id']}/cancel")
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "cancelled"
    assert response.json()["cancel_requested"] is True

    # A worker that receives it afterwards never trains it.
    assert run_job(job["id"]) == "skipped"
    after = api.get(f"/v1/jobs/{job['id']}").json()
    assert after["status"] == "cancelled"
    assert after["attempts"] == 0
    assert after["model_id"] is None
    assert api.get(f"/v1/jobs/{job['id']}/metrics").json()["epochs"] == []


def test_cancel_running_job_asks_it_to_stop(
    api: Api, backend: Backend, dataset_id: str, submit
) -> None:
    job = submit(dataset_id, training={"epochs": 7})
    # A worker has claimed it and not yet reported an epoch.
    with transaction(backend.app.state.session_factory) as session:
        assert jobs.claim(session, job["id"], "other-worker", 60)
    running = api.get(f"/v1/jobs/{job['id']}").json()
    assert running["status"] == "running"
    assert running["progress"] == {
        "epoch": 0,
        "epochs": 7,
        "samples_per_second": None,
        "eta_seconds": None,
        "fold": None,
        "folds": None,
    }

    response = api.post(f"/v1/jobs/{job['id']}/cancel")
    assert response.status_code == 202, response.text
    # The worker stops at its next step; until then the job is still running.
    assert response.json()["status"] == "running"
    assert response.json()["cancel_requested"] is True
    with transaction(backend.app.state.session_factory) as session:
        assert jobs.is_cancel_requested(session, job["id"])


def test_cancel_cancelled_job_is_409(api: Api, dataset_id: str, submit) -> None:
    job = submit(dataset_id)
    assert api.post(f"/v1/jobs/{job['id']}/cancel").status_code == 202
    response = api.post(f"/v1/jobs/{job['id']}/cancel")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"


def test_cancel_succeeded_job_is_409(api: Api, dataset_id: str, submit, run_job) -> None:
    job = submit(dataset_id, training={"epochs": 5})
    assert run_job(job["id"]) == "succeeded"
    response = api.post(f"/v1/jobs/{job['id']}/cancel")
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "conflict"
    assert "succeeded" in error["message"]
    assert api.get(f"/v1/jobs/{job['id']}").json()["status"] == "succeeded"


def test_cancel_unknown_job_is_404(api: Api) -> None:
    response = api.post("/v1/jobs/job_doesnotexist/cancel")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_cancel_without_key_is_401(backend: Backend, dataset_id: str, submit) -> None:
    job = submit(dataset_id)
    assert backend.client.post(f"/v1/jobs/{job['id']}/cancel").status_code == 401


# --- running ----------------------------------------------------------------------------------


def test_succeeded_job_shows_model_progress_and_metrics(
    api: Api, dataset_id: str, submit, run_job
) -> None:
    job = submit(dataset_id, training={"epochs": 8})
    assert run_job(job["id"]) == "succeeded"
    body = api.get(f"/v1/jobs/{job['id']}").json()
    assert body["status"] == "succeeded"
    assert body["attempts"] == 1
    assert body["error"] is None
    assert body["model_id"]
    assert body["progress"]["epoch"] >= 1
    assert body["progress"]["epochs"] == 8
    assert body["progress"]["eta_seconds"] is None  # finished: nothing left to wait for
    assert {"val_loss", "val_accuracy"} <= set(body["metrics"])
    assert 0.0 <= body["metrics"]["val_accuracy"] <= 1.0
    assert body["started_at"] and body["finished_at"]
    # The job's model is in the project's models.
    assert api.get(f"/v1/models/{body['model_id']}").status_code == 200


def test_metrics_have_one_entry_per_epoch_in_order(
    api: Api, dataset_id: str, submit, run_job
) -> None:
    job = submit(dataset_id, training={"epochs": 6})
    assert run_job(job["id"]) == "succeeded"
    response = api.get(f"/v1/jobs/{job['id']}/metrics")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["job_id"] == job["id"]
    epochs = [e["epoch"] for e in body["epochs"]]
    assert epochs == list(range(1, 7))
    for entry in body["epochs"]:
        assert {"train_loss", "val_loss", "val_accuracy"} <= set(entry["values"])
    last = api.get(f"/v1/jobs/{job['id']}").json()["progress"]["epoch"]
    assert last == epochs[-1]


def test_metrics_of_unknown_job_is_404(api: Api) -> None:
    response = api.get("/v1/jobs/job_doesnotexist/metrics")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_regression_job_reports_mae_and_r2(api: Api, submit, run_job) -> None:
    dataset_id = upload(api, linear_regression(), "linear.csv")
    job = submit(dataset_id, task="regression", target="y", training={"epochs": 10})
    assert run_job(job["id"]) == "succeeded"
    body = api.get(f"/v1/jobs/{job['id']}").json()
    assert {"val_loss", "val_mae", "val_r2"} <= set(body["metrics"])
    assert "val_accuracy" not in body["metrics"]
    history = api.get(f"/v1/jobs/{job['id']}/metrics").json()["epochs"]
    assert [e["epoch"] for e in history] == list(range(1, 11))
    assert all({"val_mae", "val_r2"} <= set(e["values"]) for e in history)


def test_diverging_job_fails_with_advice(api: Api, submit, run_job) -> None:
    dataset_id = upload(api, linear_regression(), "linear.csv")
    training = {
        "epochs": 20,
        "optimizer": "sgd",
        "learning_rate": 100,
        "early_stopping": None,
    }
    job = submit(dataset_id, task="regression", target="y", training=training)
    assert run_job(job["id"]) == "failed"
    body = api.get(f"/v1/jobs/{job['id']}").json()
    assert body["status"] == "failed"
    assert body["model_id"] is None
    assert body["report"] is None
    assert body["error"]["code"] == "diverged"
    assert "learning rate" in body["error"]["message"]
    assert api.get("/v1/models").json()["total"] == 0


def test_single_class_target_is_refused_before_it_is_queued(api: Api) -> None:
    columns = {"x": [float(i) for i in range(20)], "label": ["yes"] * 20}
    dataset_id = upload(api, columns, "one_class.csv")
    response = create(api, dataset_id, {**CLASSIFY, "training": {"epochs": 5}})
    error = assert_invalid(response, "dataset_id")
    assert error["code"] == "bad_dataset"
    assert "'label'" in error["message"] and "2 classes" in error["message"]
    assert api.get("/v1/jobs").json()["total"] == 0


def test_classification_on_an_empty_target_column_is_422(api: Api) -> None:
    dataset_id = upload(api, {"x": [1.0, 2.0, 3.0, 4.0], "label": [None, None, None, None]})
    error = assert_invalid(
        create(api, dataset_id, {"task": "classification", "target": "label"}), "spec.target"
    )
    assert "no values" in error["message"]


def test_a_body_that_is_not_json_is_422_naming_the_body(api: Api) -> None:
    headers = {**api.headers, "Content-Type": "application/json"}
    response = api.client.post("/v1/jobs", content=b"{not json", headers=headers)
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "body"
