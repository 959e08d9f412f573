"""Batch prediction: submitted against a model, run as a worker would run it, downloaded."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from service.batch_predictions.prediction_run import run_batch_prediction
from tests.conftest import Api, Backend
from tests.sample_data import csv_bytes, linear_regression, mixed_classification
from tests.service.conftest import worker_resources


def _submit(api: Api, ref: str, **body) -> dict:
    response = api.post(f"/v1/models/{ref}/batch-predictions", json=body)
    assert response.status_code == 202, response.text
    return response.json()


def _read(content: bytes, fmt: str) -> pa.Table:
    if fmt == "csv":
        return pacsv.read_csv(io.BytesIO(content))
    return pq.read_table(io.BytesIO(content))


def _upload(api: Api, columns: dict[str, list], name: str = "data.csv") -> str:
    response = api.upload(csv_bytes(columns), name)
    assert response.status_code == 201, response.text
    return response.json()["id"]


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_batch_predictions_equal_the_predict_endpoint(
    api: Api, trained_model_id: str, run_batch, fmt: str
) -> None:
    rows = mixed_classification(n=50, seed=3)
    rows = {"id": [f"row-{i}" for i in range(50)], **rows}
    dataset_id = _upload(api, rows)
    batch = _submit(api, trained_model_id, dataset_id=dataset_id, format=fmt)
    assert batch["status"] == "queued"
    assert batch["id"].startswith("bp_")
    assert batch["id_column"] == "id"
    assert batch["progress"] == {"rows_done": 0, "rows_total": 50}

    # One forward pass, as the predict call below makes: float32 sums differ in their last
    # bits between batch sizes, and this compares to 1e-9.
    assert run_batch(batch["id"]) == "succeeded"
    done = api.get(f"/v1/batch-predictions/{batch['id']}").json()
    assert done["status"] == "succeeded"
    assert done["progress"] == {"rows_done": 50, "rows_total": 50}
    assert done["result_url"] == f"/v1/batch-predictions/{batch['id']}/result"

    response = api.get(done["result_url"])
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(
        "text/csv" if fmt == "csv" else "application/vnd.apache.parquet"
    )
    result = _read(response.content, fmt)
    instances = [{k: rows[k][i] for k in ("x1", "x2", "colour")} for i in range(50)]
    expected = api.post(f"/v1/models/{trained_model_id}/predict", json={"instances": instances})
    expected = expected.json()["predictions"]
    classes = sorted(expected[0]["probabilities"])
    assert result.column_names == ["id", "label", *[f"probability_{c}" for c in classes]]
    assert result.column("id").to_pylist() == rows["id"]
    assert result.column("label").to_pylist() == [p["label"] for p in expected]
    for c in classes:
        got = result.column(f"probability_{c}").to_pylist()
        want = [p["probabilities"][c] for p in expected]
        assert got == pytest.approx(want, abs=1e-9)


def test_progress_counts_chunks_and_rows_stay_in_order(
    api: Api, trained_model_id: str, run_batch
) -> None:
    rows = mixed_classification(n=50, seed=4)
    dataset_id = _upload(api, rows)
    batch = _submit(api, trained_model_id, dataset_id=dataset_id, format="csv")
    assert run_batch(batch["id"], chunk_rows=16) == "succeeded"
    done = api.get(f"/v1/batch-predictions/{batch['id']}").json()
    assert done["progress"] == {"rows_done": 50, "rows_total": 50}
    result = _read(api.get(done["result_url"]).content, "csv")
    assert result.num_rows == 50
    assert result.column_names[0] == "label"
    instances = [{k: rows[k][i] for k in ("x1", "x2", "colour")} for i in range(50)]
    expected = api.post(f"/v1/models/{trained_model_id}/predict", json={"instances": instances})
    expected = expected.json()["predictions"]
    for c in expected[0]["probabilities"]:
        got = result.column(f"probability_{c}").to_pylist()
        # Chunks of other sizes than the predict call's: float32 rounding apart.
        assert got == pytest.approx([p["probabilities"][c] for p in expected], abs=1e-6)


def test_regression_writes_values_with_a_named_id_column(
    api: Api, submit, run_job, run_batch
) -> None:
    data = linear_regression(n=120)
    train_id = _upload(api, data)
    job = submit(train_id, task="regression", target="y", training={"epochs": 5})
    assert run_job(job["id"]) == "succeeded"
    model_id = api.get(f"/v1/jobs/{job['id']}").json()["model_id"]

    rows = {"key": list(range(10)), "a": data["a"][:10], "b": data["b"][:10]}
    dataset_id = _upload(api, rows)
    batch = _submit(api, model_id, dataset_id=dataset_id, id_column="key")
    assert run_batch(batch["id"]) == "succeeded"
    result = _read(api.get(f"/v1/batch-predictions/{batch['id']}/result").content, "parquet")
    assert result.column_names == ["key", "value"]
    instances = [{"a": rows["a"][i], "b": rows["b"][i]} for i in range(10)]
    expected = api.post(f"/v1/models/{model_id}/predict", json={"instances": instances}).json()
    assert result.column("value").to_pylist() == pytest.approx(
        [p["value"] for p in expected["predictions"]], abs=1e-9
    )


def test_a_model_named_by_alias_is_fixed_at_submit(
    api: Api, trained_model_id: str, dataset_id: str
) -> None:
    name = api.get(f"/v1/models/{trained_model_id}").json()["name"]
    response = api.client.put(
        f"/v1/models/{name}/aliases/production", headers=api.headers, json={"version": 1}
    )
    assert response.status_code == 200, response.text
    batch = _submit(api, f"{name}@production", dataset_id=dataset_id)
    assert batch["model_id"] == trained_model_id
    assert batch["id_column"] is None


def test_result_before_success_is_a_conflict(
    api: Api, trained_model_id: str, dataset_id: str
) -> None:
    batch = _submit(api, trained_model_id, dataset_id=dataset_id)
    response = api.get(f"/v1/batch-predictions/{batch['id']}/result")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "not_ready"
    assert "queued" in response.json()["error"]["message"]


def test_a_missing_feature_column_is_refused_naming_it(api: Api, trained_model_id: str) -> None:
    rows = mixed_classification(n=20)
    del rows["colour"]
    dataset_id = _upload(api, rows)
    response = api.post(
        f"/v1/models/{trained_model_id}/batch-predictions", json={"dataset_id": dataset_id}
    )
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "missing_column"
    assert "'colour'" in error["message"]


def test_an_unknown_id_column_is_refused(api: Api, trained_model_id: str, dataset_id: str) -> None:
    response = api.post(
        f"/v1/models/{trained_model_id}/batch-predictions",
        json={"dataset_id": dataset_id, "id_column": "nope"},
    )
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "id_column"


def test_unknown_or_foreign_model_or_dataset_is_not_found(
    api: Api, other_api: Api, trained_model_id: str, dataset_id: str
) -> None:
    own_dataset = _upload(other_api, mixed_classification(n=20))
    cases = [
        (api, "mdl_nope", dataset_id),
        (api, trained_model_id, "ds_nope"),
        (other_api, trained_model_id, own_dataset),
        (api, trained_model_id, own_dataset),
    ]
    for client, ref, ds in cases:
        response = client.post(f"/v1/models/{ref}/batch-predictions", json={"dataset_id": ds})
        assert response.status_code == 404, (ref, ds, response.text)
        assert response.json()["error"]["code"] == "not_found"


def test_another_projects_batch_prediction_is_not_found(
    api: Api, other_api: Api, trained_model_id: str, dataset_id: str
) -> None:
    batch = _submit(api, trained_model_id, dataset_id=dataset_id)
    for url in (
        f"/v1/batch-predictions/{batch['id']}",
        f"/v1/batch-predictions/{batch['id']}/result",
    ):
        assert other_api.get(url).status_code == 404
    assert other_api.get("/v1/batch-predictions").json()["total"] == 0


def test_list_is_paged_and_filtered(api: Api, trained_model_id: str, dataset_id: str) -> None:
    ids = [_submit(api, trained_model_id, dataset_id=dataset_id)["id"] for _ in range(3)]
    page = api.get("/v1/batch-predictions", params={"limit": 2}).json()
    assert page["total"] == 3 and len(page["items"]) == 2
    assert {b["id"] for b in page["items"]} <= set(ids)
    assert api.get("/v1/batch-predictions", params={"status": "succeeded"}).json()["total"] == 0
    assert api.get("/v1/batch-predictions").status_code == 200


def test_a_cancelled_batch_prediction_is_not_run(
    api: Api, trained_model_id: str, dataset_id: str, run_batch
) -> None:
    batch = _submit(api, trained_model_id, dataset_id=dataset_id)
    response = api.post(f"/v1/batch-predictions/{batch['id']}/cancel")
    assert response.status_code == 202
    assert response.json()["status"] == "cancelled"
    assert run_batch(batch["id"]) == "skipped"
    assert api.post(f"/v1/batch-predictions/{batch['id']}/cancel").status_code == 409


def test_a_run_is_claimed_once(api: Api, trained_model_id: str, dataset_id: str, run_batch):
    batch = _submit(api, trained_model_id, dataset_id=dataset_id)
    assert run_batch(batch["id"]) == "succeeded"
    assert run_batch(batch["id"]) == "skipped"
    assert api.get(f"/v1/batch-predictions/{batch['id']}").json()["attempts"] == 1


def test_bad_cells_fail_the_run_with_a_clear_error(
    api: Api, trained_model_id: str, run_batch
) -> None:
    rows = mixed_classification(n=20)
    rows["x1"] = ["not a number"] * 20
    dataset_id = _upload(api, rows)
    batch = _submit(api, trained_model_id, dataset_id=dataset_id)
    assert run_batch(batch["id"]) == "failed"
    done = api.get(f"/v1/batch-predictions/{batch['id']}").json()
    assert done["error"]["code"] == "invalid_instances"
    assert "x1" in done["error"]["message"]
    assert api.get(f"/v1/batch-predictions/{batch['id']}/result").status_code == 409


def test_a_key_is_required(backend: Backend) -> None:
    assert backend.client.get("/v1/batch-predictions").status_code == 401
    assert backend.client.get("/v1/batch-predictions/bp_x/result").status_code == 401


def test_a_worker_shutting_down_hands_its_batch_prediction_back(
    backend: Backend, api: Api, trained_model_id: str, dataset_id: str, run_batch
) -> None:
    resources = worker_resources(backend)
    resources.shutdown.set()
    batch = _submit(api, trained_model_id, dataset_id=dataset_id)
    assert run_batch_prediction(resources, batch["id"]) == "released"
    handed_back = api.get(f"/v1/batch-predictions/{batch['id']}").json()
    assert (handed_back["status"], handed_back["error"]) == ("queued", None)
    assert handed_back["result_url"] is None
    # The next worker runs it whole.
    assert run_batch(batch["id"]) == "succeeded"
    done = api.get(f"/v1/batch-predictions/{batch['id']}").json()
    assert done["attempts"] == 2
    assert done["progress"]["rows_done"] == done["progress"]["rows_total"]
