"""`GET /v1/jobs/compare`: several runs of one project lined up to overlay, on the embedded
default and on PostgreSQL."""

from __future__ import annotations

from service.jobs.service import spec_differences
from tests.conftest import Api, Backend, assert_invalid
from tests.sample_data import csv_bytes, mixed_classification

RATES = [0.01, 0.003, 0.001]


def compare(api: Api, *ids: str):
    return api.get("/v1/jobs/compare", params={"ids": ",".join(ids)})


def assert_not_found(response, job_id: str) -> None:
    assert response.status_code == 404, response.text
    error = response.json()["error"]
    assert error["code"] == "not_found"
    assert job_id in error["message"]
    assert {"field": "ids", "reason": f"job {job_id!r} not found"} in error["details"]


# --- happy ------------------------------------------------------------------------------------


def test_compare_lines_up_real_runs_in_the_order_asked(
    api: Api, dataset_id: str, submit, run_job
) -> None:
    ids = []
    for rate in RATES:
        job = submit(dataset_id, training={"epochs": 3, "learning_rate": rate})
        assert run_job(job["id"]) == "succeeded"
        ids.append(job["id"])
    asked = [ids[1], ids[0], ids[2]]

    response = compare(api, *asked)
    assert response.status_code == 200, response.text
    body = response.json()
    assert [j["id"] for j in body["jobs"]] == asked
    assert body["spec_differences"] == [
        {"path": "training.learning_rate", "values": [RATES[1], RATES[0], RATES[2]]}
    ]

    for compared in body["jobs"]:
        job = api.get(f"/v1/jobs/{compared['id']}").json()
        assert compared["status"] == "succeeded"
        assert compared["dataset_id"] == dataset_id
        assert compared["spec"] == job["spec"]

        history = api.get(f"/v1/jobs/{compared['id']}/metrics").json()["epochs"]
        curves = compared["curves"]
        assert compared["epochs_run"] == len(history) == 3
        assert curves["epoch"] == [e["epoch"] for e in history] == [1, 2, 3]
        assert list(curves)[:3] == ["epoch", "train_loss", "val_loss"]
        assert {"val_accuracy", "learning_rate"} <= set(curves)
        # Every series but the per-layer gradient norms, each one value per epoch.
        names = {n for e in history for n in e["values"] if not n.startswith("grad_norm/")}
        assert any(n.startswith("grad_norm/") for e in history for n in e["values"])
        assert set(curves) == names | {"epoch"}
        for name in names:
            assert curves[name] == [e["values"][name] for e in history], name

        lowest = min(history, key=lambda e: e["values"]["val_loss"])
        assert compared["best"]["epoch"] == lowest["epoch"]
        assert compared["best"]["values"]["val_loss"] == min(curves["val_loss"])
        assert compared["last"]["epoch"] == 3
        assert compared["last"]["values"] == {
            n: v for n, v in history[-1]["values"].items() if not n.startswith("grad_norm/")
        }


def test_compare_jobs_not_yet_run(api: Api, dataset_id: str, submit) -> None:
    first = submit(dataset_id, model={"family": "mlp", "hidden": [16, 8]})
    second = submit(dataset_id, training={"early_stopping": None})
    response = compare(api, first["id"], second["id"])
    assert response.status_code == 200, response.text
    body = response.json()
    for compared in body["jobs"]:
        assert compared["status"] == "queued"
        assert compared["epochs_run"] == 0
        assert compared["curves"] == {"epoch": []}
        assert compared["best"] is None and compared["last"] is None
    differences = {d["path"]: d["values"] for d in body["spec_differences"]}
    # Lists compare whole; a path one spec lacks is null there.
    assert differences["model.hidden"] == [[16, 8], None]
    assert differences["training.early_stopping.patience"] == [10, None]
    assert "training.learning_rate" not in differences


def test_compare_ids_may_have_spaces_after_commas(api: Api, dataset_id: str, submit) -> None:
    ids = [submit(dataset_id)["id"], submit(dataset_id)["id"]]
    response = api.get("/v1/jobs/compare", params={"ids": f"{ids[0]}, {ids[1]}"})
    assert response.status_code == 200, response.text
    assert [j["id"] for j in response.json()["jobs"]] == ids
    assert response.json()["spec_differences"] == []


def test_spec_differences_flatten_to_dotted_paths() -> None:
    specs = [
        {"task": "regression", "model": {"hidden": [64, 32], "dropout": 0.1}, "seed": 1},
        {"task": "regression", "model": {"hidden": [64, 32], "dropout": 0.2}, "seed": True},
        {"task": "regression", "model": None, "seed": 1},
    ]
    differences = {d.path: d.values for d in spec_differences(specs)}
    assert differences == {
        "model.dropout": [0.1, 0.2, None],
        "model.hidden": [[64, 32], [64, 32], None],
        # `true` is not `1` to a client reading JSON.
        "seed": [1, True, 1],
    }


# --- 401, 404, 422 ----------------------------------------------------------------------------


def test_compare_without_key_is_401(backend: Backend) -> None:
    response = backend.client.get("/v1/jobs/compare", params={"ids": "job_a,job_b"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


def test_compare_with_an_unknown_job_is_404(api: Api, dataset_id: str, submit) -> None:
    job = submit(dataset_id)
    assert_not_found(compare(api, job["id"], "job_doesnotexist"), "job_doesnotexist")


def test_compare_with_another_projects_job_is_404(
    api: Api, other_api: Api, dataset_id: str, submit
) -> None:
    mine = submit(dataset_id)["id"]
    upload = other_api.upload(csv_bytes(mixed_classification()), "mixed.csv")
    assert upload.status_code == 201, upload.text
    body = {
        "dataset_id": upload.json()["id"],
        "spec": {"task": "classification", "target": "label"},
    }
    theirs = other_api.post("/v1/jobs", json=body)
    assert theirs.status_code == 202, theirs.text

    # The other project's own job is found; this project's is not, for it.
    response = compare(other_api, theirs.json()["id"], mine)
    assert_not_found(response, mine)
    assert len(response.json()["error"]["details"]) == 1
    assert_not_found(compare(api, mine, theirs.json()["id"]), theirs.json()["id"])


def test_compare_one_job_is_422(api: Api, dataset_id: str, submit) -> None:
    error = assert_invalid(compare(api, submit(dataset_id)["id"]), "ids")
    assert "2 to 20" in error["message"] and "got 1" in error["message"]


def test_compare_21_jobs_is_422(api: Api) -> None:
    error = assert_invalid(compare(api, *[f"job_{i}" for i in range(21)]), "ids")
    assert "2 to 20" in error["message"] and "got 21" in error["message"]


def test_compare_the_same_job_twice_is_422(api: Api, dataset_id: str, submit) -> None:
    job = submit(dataset_id)
    other = submit(dataset_id)
    error = assert_invalid(compare(api, job["id"], other["id"], job["id"]), "ids")
    assert f"{job['id']!r} is given more than once" in error["message"]


def test_compare_with_an_empty_id_is_422(api: Api) -> None:
    error = assert_invalid(compare(api, "job_a", "", "job_b"), "ids")
    assert "empty" in error["message"]


def test_compare_without_ids_is_422(api: Api) -> None:
    assert_invalid(api.get("/v1/jobs/compare"), "ids")
    assert_invalid(api.get("/v1/jobs/compare", params={"ids": ""}), "ids")
