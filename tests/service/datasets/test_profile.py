"""Dataset profile, duplicate uploads, and the row, column and content checks of an upload."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.data.ingest import pieces
from tests.conftest import Api, Backend, running_backend
from tests.sample_data import csv_bytes, mixed_classification
from tests.service.datasets.test_routes import assert_file_refused, dataset_folders, store_dir


def store_files(backend: Backend) -> list[Path]:
    root = store_dir(backend) / "datasets"
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_profile_without_target(api: Api, dataset_id: str) -> None:
    response = api.get(f"/v1/datasets/{dataset_id}/profile")

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["dataset_id"], body["rows"], body["duplicate_rows"]) == (dataset_id, 240, 0)
    columns = {c["name"]: c for c in body["columns"]}
    data = mixed_classification()
    x1 = np.array(data["x1"])
    assert columns["x1"]["numeric"]["mean"] == pytest.approx(x1.mean())
    assert columns["x1"]["numeric"]["std"] == pytest.approx(x1.std(ddof=1))
    assert sum(columns["x1"]["numeric"]["histogram"]["counts"]) == 240
    assert columns["x2"]["missing"] == 15
    assert {t["value"] for t in columns["colour"]["top_values"]} == {"red", "green", "blue"}
    assert body["warnings"] == []
    assert body["target"] is None


def test_profile_with_target(api: Api, dataset_id: str) -> None:
    response = api.get(f"/v1/datasets/{dataset_id}/profile", params={"target": "label"})

    assert response.status_code == 200, response.text
    target = response.json()["target"]
    labels = mixed_classification()["label"]
    assert target["task"] == "classification"
    assert {c["value"]: c["count"] for c in target["classes"]} == {
        "yes": labels.count("yes"),
        "no": labels.count("no"),
    }
    assert {f["column"] for f in target["features"]} == {"x1", "x2", "colour"}
    # Asked again: the cached answer, the same.
    again = api.get(f"/v1/datasets/{dataset_id}/profile", params={"target": "label"})
    assert again.json() == response.json()


def test_profile_flags_a_leaking_column(api: Api) -> None:
    data = mixed_classification(n=200)
    data["label_code"] = [1 if v == "yes" else 0 for v in data["label"]]
    dataset = api.upload(csv_bytes(data), "leaky.csv").json()

    body = api.get(f"/v1/datasets/{dataset['id']}/profile", params={"target": "label"}).json()

    leaks = [w for w in body["warnings"] if w["code"] == "leakage_suspect"]
    assert [w["column"] for w in leaks] == ["label_code"]


def test_profile_unknown_target_is_422(api: Api, dataset_id: str) -> None:
    response = api.get(f"/v1/datasets/{dataset_id}/profile", params={"target": "nope"})

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["details"][0]["field"] == "target"
    assert "'nope'" in error["message"]


def test_profile_of_another_projects_dataset_is_404(other_api: Api, dataset_id: str) -> None:
    response = other_api.get(f"/v1/datasets/{dataset_id}/profile")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_profile_is_computed_for_a_dataset_stored_without_one(
    api: Api, backend: Backend, dataset_id: str
) -> None:
    stored = store_dir(backend) / "datasets" / dataset_id / "profile.json"
    stored.unlink()

    response = api.get(f"/v1/datasets/{dataset_id}/profile")

    assert response.status_code == 200, response.text
    assert response.json()["rows"] == 240
    assert stored.exists()


def test_profile_of_arrays_is_409(api: Api) -> None:
    import io

    sink = io.BytesIO()
    np.savez(sink, x=np.zeros((4, 3), dtype=np.float32), y=np.array([0, 1, 0, 1]))
    dataset = api.upload(sink.getvalue(), "arrays.npz").json()

    response = api.get(f"/v1/datasets/{dataset['id']}/profile")

    assert response.status_code == 409
    assert "not a table" in response.json()["error"]["message"]


# --- duplicates -------------------------------------------------------------------------------


def test_same_bytes_twice_is_the_same_dataset(api: Api, backend: Backend) -> None:
    content = csv_bytes(mixed_classification(n=30))
    first = api.upload(content, "a.csv")
    folders = dataset_folders(backend)

    second = api.upload(content, "b.csv")

    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json()["id"] == first.json()["id"]
    assert dataset_folders(backend) == folders  # the second copy was not kept
    assert api.get("/v1/datasets").json()["total"] == 1


def test_same_bytes_in_another_project_is_another_dataset(api: Api, other_api: Api) -> None:
    content = csv_bytes(mixed_classification(n=30))

    mine, theirs = api.upload(content, "a.csv"), other_api.upload(content, "a.csv")

    assert (mine.status_code, theirs.status_code) == (201, 201)
    assert mine.json()["id"] != theirs.json()["id"]


# --- limits and malformed files ---------------------------------------------------------------


def test_rows_over_the_limit_are_413_and_leave_nothing(tmp_path: Path) -> None:
    with running_backend("sqlite", tmp_path, max_rows=10) as small:
        api = Api(small.client, small.new_project_key())

        error = assert_file_refused(api.upload(csv_bytes({"a": list(range(11))})), 413)

        assert error["code"] == "too_large" and "rows" in error["message"]
        assert store_files(small) == []
        assert api.get("/v1/datasets").json()["total"] == 0
        assert api.upload(csv_bytes({"a": list(range(10))})).status_code == 201


def test_columns_over_the_limit_are_413_and_leave_nothing(tmp_path: Path) -> None:
    with running_backend("sqlite", tmp_path, max_columns=3) as small:
        api = Api(small.client, small.new_project_key())
        wide = {f"c{i}": [1, 2] for i in range(4)}

        error = assert_file_refused(api.upload(csv_bytes(wide)), 413)

        assert error["code"] == "too_large" and "columns" in error["message"]
        assert store_files(small) == []
        assert api.get("/v1/datasets").json()["total"] == 0


def test_ragged_csv_is_422_naming_the_line(api: Api, backend: Backend) -> None:
    before = dataset_folders(backend)

    error = assert_file_refused(api.upload(b"a,b,c\n1,2,3\n4,5,6,7\n", "ragged.csv"))

    assert error["code"] == "bad_dataset"
    assert error["message"] == "file: line 3: expected 3 fields, found 4"
    assert dataset_folders(backend) == before
    assert api.get("/v1/datasets").json()["total"] == 0


def test_jsonl_and_tsv_uploads(api: Api) -> None:
    jsonl = api.upload(b'{"a": 1, "b": "x"}\n{"a": 2, "b": "y"}\n', "rows.jsonl")
    tsv = api.upload(b"a\tb\n1\tx\n2\ty\n", "rows.tsv")

    assert (jsonl.status_code, tsv.status_code) == (201, 201)
    assert (jsonl.json()["source_format"], jsonl.json()["name"]) == ("jsonl", "rows")
    assert (tsv.json()["source_format"], tsv.json()["rows"]) == ("tsv", 2)


def test_column_typed_late_is_read_again_not_refused(api: Api, monkeypatch) -> None:
    # Several pieces, the decimal only in the last: the upload still succeeds.
    monkeypatch.setattr(pieces, "PIECE_BYTES", 64)
    content = b"n,s\n" + b"".join(b"%d,x\n" % i for i in range(100)) + b"2.5,y\n"

    response = api.upload(content, "late.csv")

    assert response.status_code == 201, response.text
    assert response.json()["rows"] == 101
    columns = {c["name"]: c["dtype"] for c in response.json()["columns"]}
    assert columns["n"] == "double"
