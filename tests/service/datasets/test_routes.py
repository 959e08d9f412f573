from __future__ import annotations

from pathlib import Path

from tests.conftest import Api, Backend, running_backend
from tests.sample_data import csv_bytes, mixed_classification, parquet_bytes


def store_dir(backend: Backend) -> Path:
    return backend.settings.resolved_data_dir / "store"


def dataset_folders(backend: Backend) -> set[str]:
    root = store_dir(backend) / "datasets"
    return {p.name for p in root.iterdir()} if root.exists() else set()


def assert_file_refused(response, status: int = 422) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["message"]
    assert any(d.get("field") == "file" for d in error["details"]), error
    if status == 422:
        assert all(d.get("reason") for d in error["details"]), error
    return error


# --- upload -----------------------------------------------------------------------------------


def test_upload_csv_returns_its_profile(api: Api) -> None:
    response = api.upload(csv_bytes(mixed_classification(n=60)), "people.csv")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["id"].startswith("ds")
    assert body["name"] == "people"
    assert body["source_format"] == "csv"
    assert body["rows"] == 60
    columns = {c["name"]: c for c in body["columns"]}
    assert list(columns) == ["x1", "x2", "colour", "label"]
    assert columns["x1"]["type"] == "numeric" and columns["x1"]["missing"] == 0
    assert columns["x1"]["dtype"] == "double"
    # Every 17th value of x2 is missing: rows 0, 17, 34, 51.
    assert columns["x2"]["type"] == "numeric" and columns["x2"]["missing"] == 4
    assert columns["colour"]["type"] == "categorical" and columns["colour"]["missing"] == 0
    assert columns["label"]["type"] == "categorical"


def test_upload_parquet(api: Api) -> None:
    columns = {"a": [1, 2, 3], "b": ["x", None, "z"], "flag": [True, False, True]}
    response = api.upload(parquet_bytes(columns), "table.parquet")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["name"] == "table"
    assert body["source_format"] == "parquet"
    assert body["rows"] == 3
    profile = {c["name"]: (c["type"], c["missing"]) for c in body["columns"]}
    assert profile == {"a": ("numeric", 0), "b": ("categorical", 1), "flag": ("boolean", 0)}


def test_upload_name_field_overrides_the_filename(api: Api) -> None:
    response = api.upload(csv_bytes({"a": [1, 2]}), "data.csv", name="Quarterly sales")
    assert response.status_code == 201, response.text
    assert response.json()["name"] == "Quarterly sales"


def test_upload_path_in_filename_is_only_a_label(api: Api, backend: Backend) -> None:
    response = api.upload(csv_bytes({"a": [1, 2]}), "../../etc/passwd.csv")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["name"] == "passwd"

    store = store_dir(backend)
    files = [p.relative_to(store).parts for p in store.rglob("*") if p.is_file()]
    assert sorted(parts[2] for parts in files if parts[:2] == ("datasets", body["id"])) == [
        "data.parquet",
        "profile.json",
        "source",
    ]
    # Nothing of the upload's own making anywhere in the store or next to it.
    # Only the folders the service itself names; jobs and batch predictions of other tests
    # share this store.
    assert all(parts[0] in ("datasets", "models", "jobs", "predictions") for parts in files), files
    assert not any("passwd" in part or part == "etc" for parts in files for part in parts)
    assert not (store.parent.parent / "etc").exists()
    assert not (store.parent / "etc").exists()


def test_upload_without_key_is_401(backend: Backend) -> None:
    files = {"file": ("a.csv", csv_bytes({"a": [1]}), "text/csv")}
    response = backend.client.post("/v1/datasets", files=files)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


def test_upload_with_wrong_key_is_401(backend: Backend) -> None:
    before = dataset_folders(backend)
    files = {"file": ("a.csv", csv_bytes({"a": [1]}), "text/csv")}
    headers = {"Authorization": "Bearer ty_not-a-real-key"}
    response = backend.client.post("/v1/datasets", files=files, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert dataset_folders(backend) == before


def test_upload_empty_file_is_422(api: Api, backend: Backend) -> None:
    before = dataset_folders(backend)
    assert_file_refused(api.upload(b"", "empty.csv"))
    assert dataset_folders(backend) == before


def test_upload_header_only_csv_is_422(api: Api, backend: Backend) -> None:
    before = dataset_folders(backend)
    error = assert_file_refused(api.upload(b"a,b,c\n", "header.csv"))
    assert "no data rows" in error["message"]
    assert dataset_folders(backend) == before


def test_upload_duplicate_header_is_422(api: Api, backend: Backend) -> None:
    before = dataset_folders(backend)
    error = assert_file_refused(api.upload(b"a,b,a\n1,2,3\n", "dup.csv"))
    assert "'a'" in error["message"]
    assert dataset_folders(backend) == before


def test_upload_of_text_that_is_not_utf8_is_422_naming_the_column(
    api: Api, backend: Backend
) -> None:
    before = dataset_folders(backend)
    error = assert_file_refused(api.upload("x,city\n1,Orl\xe9ans\n".encode("latin-1"), "l1.csv"))
    assert "'city'" in error["message"] and "UTF-8" in error["message"]
    assert dataset_folders(backend) == before


def test_upload_that_is_not_multipart_is_422(api: Api, backend: Backend) -> None:
    before = dataset_folders(backend)
    headers = {**api.headers, "Content-Type": "text/csv"}
    response = api.client.post("/v1/datasets", content=b"a,b\n1,2\n", headers=headers)
    error = assert_file_refused(response)
    assert "multipart/form-data" in error["message"]
    assert dataset_folders(backend) == before


def test_upload_without_file_field_is_422(api: Api, backend: Backend) -> None:
    before = dataset_folders(backend)
    response = api.post(
        "/v1/datasets",
        files={"data": ("a.csv", csv_bytes({"a": [1, 2]}), "text/csv")},
        data={"name": "x"},
    )
    error = assert_file_refused(response)
    assert "'file'" in error["message"]
    assert dataset_folders(backend) == before


def multipart_post(api: Api, body: bytes, boundary: str = "XyZ"):
    headers = {**api.headers, "Content-Type": f"multipart/form-data; boundary={boundary}"}
    return api.client.post("/v1/datasets", content=body, headers=headers)


def test_upload_with_two_file_parts_is_422(api: Api, backend: Backend) -> None:
    before = dataset_folders(backend)
    files = [("file", ("a.csv", b"a\n1\n", "text/csv")), ("file", ("b.csv", b"a\n2\n", "text/csv"))]
    error = assert_file_refused(api.post("/v1/datasets", files=files))
    assert "one 'file'" in error["message"]
    assert dataset_folders(backend) == before


def test_upload_malformed_multipart_is_422(api: Api, backend: Backend) -> None:
    before = dataset_folders(backend)
    error = assert_file_refused(multipart_post(api, b"this is not a multipart body"))
    assert "multipart" in error["message"]
    assert dataset_folders(backend) == before


def test_upload_cut_short_is_422(api: Api, backend: Backend) -> None:
    # The body stops before the closing boundary: what arrived may be any prefix of the file,
    # so it must not become a dataset with silently fewer rows.
    before = dataset_folders(backend)
    body = (
        b"--XyZ\r\n"
        b'Content-Disposition: form-data; name="file"; filename="cut.csv"\r\n\r\n'
        b"a,b\n1,2\n3,4\n"
    )
    error = assert_file_refused(multipart_post(api, body))
    assert "multipart" in error["message"]
    assert dataset_folders(backend) == before
    assert api.get("/v1/datasets").json()["total"] == 0


def test_upload_over_the_limit_is_413(tmp_path: Path) -> None:
    with running_backend("sqlite", tmp_path, max_upload_mb=1) as small:
        api = Api(small.client, small.new_project_key())
        big = b"a,b\n" + b"1234567,7654321\n" * (2 * 2**20 // 16)
        response = api.upload(big, "big.csv")
        error = assert_file_refused(response, 413)
        assert error["code"] == "too_large"
        assert "1 MB" in error["message"]
        assert dataset_folders(small) == set()
        assert api.get("/v1/datasets").json()["total"] == 0


def test_upload_refused_while_it_is_being_converted_leaves_nothing(tmp_path: Path) -> None:
    # Past the first megabytes the CSV is already being parsed as it arrives; the refusal
    # must stop that conversion too, before the folder is cleared.
    with running_backend("sqlite", tmp_path, max_upload_mb=3) as small:
        api = Api(small.client, small.new_project_key())
        big = b"a,b\n" + b"1234567,7654321\n" * (6 * 2**20 // 16)
        assert_file_refused(api.upload(big, "big.csv"), 413)
        assert dataset_folders(small) == set()
        assert api.get("/v1/datasets").json()["total"] == 0


def test_a_ragged_row_deep_in_a_large_file_is_named_by_its_line(api: Api, backend: Backend) -> None:
    before = dataset_folders(backend)
    rows = 3 * 2**20 // 16
    body = b"a,b\n" + b"1234567,7654321\n" * rows + b"1,2,3\n" + b"4,5\n" * 10
    error = assert_file_refused(api.upload(body, "ragged.csv"))
    assert f"line {rows + 2}" in error["message"], error["message"]
    assert dataset_folders(backend) == before


def test_streamed_upload_over_the_limit_is_413(tmp_path: Path) -> None:
    # No Content-Length: the limit is enforced while the body streams in.
    with running_backend("sqlite", tmp_path, max_upload_mb=1) as small:
        api = Api(small.client, small.new_project_key())
        boundary = "trainyard-test-boundary"
        head = (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="file"; filename="big.csv"\r\n'
            "Content-Type: text/csv\r\n\r\na,b\n"
        ).encode()

        def body():
            yield head
            for _ in range(32):
                yield b"1234567,7654321\n" * 4096  # 64 KiB per chunk, 2 MiB in all
            yield f"\r\n--{boundary}--\r\n".encode()

        headers = {**api.headers, "Content-Type": f"multipart/form-data; boundary={boundary}"}
        response = small.client.post("/v1/datasets", content=body(), headers=headers)
        error = assert_file_refused(response, 413)
        assert error["code"] == "too_large"
        assert dataset_folders(small) == set()
        assert api.get("/v1/datasets").json()["total"] == 0


# --- list and get -----------------------------------------------------------------------------


def test_list_is_paginated_and_scoped_to_the_project(api: Api, other_api: Api) -> None:
    ids = set()
    for i in range(3):
        response = api.upload(csv_bytes({"a": [i, i + 1]}), f"part{i}.csv")
        assert response.status_code == 201, response.text
        ids.add(response.json()["id"])
    other_api.upload(csv_bytes({"a": [1, 2]}), "theirs.csv")

    first = api.get("/v1/datasets", params={"limit": 2}).json()
    assert (first["total"], first["limit"], first["offset"]) == (3, 2, 0)
    assert len(first["items"]) == 2
    rest = api.get("/v1/datasets", params={"limit": 2, "offset": 2}).json()
    assert (rest["total"], rest["offset"]) == (3, 2)
    assert len(rest["items"]) == 1
    assert {d["id"] for d in first["items"] + rest["items"]} == ids

    theirs = other_api.get("/v1/datasets").json()
    assert theirs["total"] == 1
    assert theirs["items"][0]["name"] == "theirs"


def test_list_without_key_is_401(backend: Backend) -> None:
    response = backend.client.get("/v1/datasets")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


def test_list_with_bad_paging_is_422(api: Api) -> None:
    response = api.get("/v1/datasets", params={"limit": 0})
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "limit"


def test_get_dataset(api: Api, dataset_id: str) -> None:
    response = api.get(f"/v1/datasets/{dataset_id}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == dataset_id
    assert body["name"] == "mixed"
    assert body["rows"] == 240


def test_get_unknown_dataset_is_404(api: Api) -> None:
    response = api.get("/v1/datasets/ds_doesnotexist")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "not_found"
    assert "ds_doesnotexist" in error["message"]


def test_get_another_projects_dataset_is_404(other_api: Api, dataset_id: str) -> None:
    response = other_api.get(f"/v1/datasets/{dataset_id}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_get_without_key_is_401(backend: Backend, dataset_id: str) -> None:
    response = backend.client.get(f"/v1/datasets/{dataset_id}")
    assert response.status_code == 401
