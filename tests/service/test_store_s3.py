"""The store on a real S3-compatible server (moto's server mode): what it writes it reads
back, a write that fails leaves no object (and no unfinished multipart upload) behind, a
prefix is deleted whole and alone, and keys are refused as on a local store."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from service.core.settings import Settings
from service.core.store import Store
from tests.conftest import Api, running_backend
from tests.s3_server import S3Server, s3_server

BIG = 12 * 2**20  # past a small block size: written as a multipart upload


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with s3_server() as server:
        yield server


@pytest.fixture
def store(s3: S3Server, request) -> Store:
    settings = Settings(**s3.settings(prefix=request.node.name[:60]))
    return Store.from_settings(settings)


@pytest.fixture
def s3_store_small(s3: S3Server, request) -> Store:
    """A store whose files go in 5 MiB parts (S3's smallest), so a test needs little data."""
    options = Settings(**s3.settings(prefix=request.node.name[:60])).store_options
    return Store(
        f"s3://{s3.bucket}/{request.node.name[:60]}", default_block_size=5 * 2**20, **options
    )


def test_a_write_is_read_back_and_exists(s3: S3Server, store: Store) -> None:
    store.write_bytes("datasets/ds_1/source.csv", b"a,b\n1,2\n")
    assert store.read_bytes("datasets/ds_1/source.csv") == b"a,b\n1,2\n"
    assert store.exists("datasets/ds_1/source.csv")
    assert store.exists("datasets/ds_1")
    assert not store.exists("datasets/ds_2/source.csv")
    prefix = store.root.split("/", 1)[1]
    assert s3.list_keys(prefix) == [f"{prefix}/datasets/ds_1/source.csv"]


def test_a_large_write_goes_in_parts_and_reads_back_whole(s3: S3Server, s3_store_small) -> None:
    data = bytes(range(256)) * (BIG // 256)
    with s3_store_small.open_write("models/mdl_1/weights.safetensors") as sink:
        for start in range(0, len(data), 2**20):
            sink.write(data[start : start + 2**20])
    assert s3_store_small.read_bytes("models/mdl_1/weights.safetensors") == data
    assert s3.unfinished_uploads() == []


@pytest.mark.parametrize("size", [10, BIG], ids=["one-put", "multipart"])
def test_a_write_that_raises_leaves_no_object(s3: S3Server, s3_store_small, size) -> None:
    store = s3_store_small
    with pytest.raises(RuntimeError), store.open_write("jobs/job_1/checkpoint.pt") as sink:
        sink.write(b"x" * size)
        raise RuntimeError("the worker failed mid-write")
    assert not store.exists("jobs/job_1/checkpoint.pt")
    assert s3.unfinished_uploads() == []


def test_a_failed_overwrite_keeps_the_object_that_was_there(s3_store_small) -> None:
    store = s3_store_small
    store.write_bytes("jobs/job_1/checkpoint.pt", b"epoch 3")
    with pytest.raises(RuntimeError), store.open_write("jobs/job_1/checkpoint.pt") as sink:
        sink.write(b"x" * BIG)
        raise RuntimeError("the worker failed mid-write")
    assert store.read_bytes("jobs/job_1/checkpoint.pt") == b"epoch 3"


def test_delete_prefix_removes_that_folder_and_no_neighbour(store: Store) -> None:
    store.write_bytes("jobs/job_1/checkpoint.pt", b"1")
    store.write_bytes("jobs/job_1/other.json", b"{}")
    store.write_bytes("jobs/job_10/checkpoint.pt", b"10")
    store.delete_prefix("jobs/job_1")
    assert not store.exists("jobs/job_1/checkpoint.pt")
    assert not store.exists("jobs/job_1/other.json")
    assert store.read_bytes("jobs/job_10/checkpoint.pt") == b"10"
    store.delete_prefix("jobs/job_404")  # nothing there: no error


@pytest.mark.parametrize("key", ["../x", "datasets/../../x", "/abs", "Datasets/x", "datasets"])
def test_keys_not_built_from_ids_are_refused(store: Store, key: str) -> None:
    with pytest.raises(ValueError, match="invalid store key"):
        store.write_bytes(key, b"x")


def test_ping_passes_and_leaves_nothing(s3: S3Server, store: Store) -> None:
    store.ping()
    assert s3.list_keys(store.root.split("/", 1)[1] + "/health") == []


def test_ping_fails_on_a_bucket_that_does_not_exist(s3: S3Server) -> None:
    settings = Settings(**{**s3.settings(), "store_url": "s3://no-such-bucket-here/store"})
    with pytest.raises(FileNotFoundError):
        Store.from_settings(settings).ping()


def test_the_key_pair_is_whole_or_absent_and_never_in_a_repr(s3: S3Server) -> None:
    settings = Settings(**s3.settings())
    assert s3.secret_access_key not in repr(settings)
    assert s3.secret_access_key not in repr(Store.from_settings(settings))
    with pytest.raises(ValueError, match="or neither"):
        Settings(store_url="s3://b/p", store_secret_access_key="only-half")
    assert Settings(store_url="s3://b/p").store_options == {}
    assert Settings(store_endpoint_url="http://x").store_options == {}  # file:// store


def test_uploads_through_the_api_on_s3_keep_what_is_good_and_nothing_refused(
    s3: S3Server, tmp_path
) -> None:
    prefix = "api-uploads"
    with running_backend("sqlite", tmp_path, max_upload_mb=3, **s3.settings(prefix)) as small:
        api = Api(small.client, small.new_project_key())
        big = b"a,b\n" + b"1234567,7654321\n" * (6 * 2**20 // 16)
        assert api.upload(big, "big.csv").status_code == 413  # refused mid-conversion
        ragged = b"a,b\n" + b"1,2\n" * 1000 + b"1,2,3\n"
        assert api.upload(ragged, "ragged.csv").status_code == 422
        assert s3.list_keys(f"{prefix}/datasets/") == []

        created = api.upload(b"a,b\n1,2\n3,4\n", "good.csv")
        assert created.status_code == 201
        stored = s3.list_keys(f"{prefix}/datasets/{created.json()['id']}/")
        assert f"{prefix}/datasets/{created.json()['id']}/data.parquet" in stored
        assert api.get(f"/v1/datasets/{created.json()['id']}/profile").status_code == 200
    assert s3.unfinished_uploads() == []
    assert not (tmp_path / "store").exists()
