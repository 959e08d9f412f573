"""Array uploads: NPZ files and ZIPs of images in one folder per class."""

from __future__ import annotations

import io
import zipfile

import numpy as np
from PIL import Image

from tests.conftest import Api, Backend
from tests.sample_data import npz_bytes


def png_bytes(value: int, size: int = 8, mode: str = "L") -> bytes:
    sink = io.BytesIO()
    Image.new(mode, (size, size), value if mode == "L" else (value,) * 3).save(sink, "PNG")
    return sink.getvalue()


def zip_bytes(members: dict[str, bytes]) -> bytes:
    sink = io.BytesIO()
    with zipfile.ZipFile(sink, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return sink.getvalue()


def two_classes(prefix: str = "", per_class: int = 3) -> dict[str, bytes]:
    return {
        f"{prefix}{label}/{i}.png": png_bytes(value + i)
        for label, value in (("cats", 30), ("dogs", 220))
        for i in range(per_class)
    }


def dataset_folders(backend: Backend) -> set[str]:
    root = backend.settings.resolved_data_dir / "store" / "datasets"
    return {p.name for p in root.iterdir()} if root.exists() else set()


def assert_refused(api: Api, backend: Backend, content: bytes, filename: str) -> dict:
    """422 naming the file; nothing stored, nothing listed."""
    before = dataset_folders(backend)
    response = api.upload(content, filename)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "bad_dataset"
    assert [d["field"] for d in error["details"]] == ["file"], error
    assert dataset_folders(backend) == before
    assert api.get("/v1/datasets").json()["total"] == 0
    return error


def assert_arrays_dataset(
    api: Api, content: bytes, filename: str, name: str, source_format: str, rows: int
) -> dict:
    """201, and a dataset of kind `arrays` named after the file, from `source_format`, with
    `rows` samples; its body."""
    response = api.upload(content, filename)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["name"] == name
    assert body["source_format"] == source_format
    assert body["kind"] == "arrays"
    assert body["rows"] == rows
    return body


# --- NPZ --------------------------------------------------------------------------------------


def test_upload_npz_is_an_arrays_dataset(api: Api) -> None:
    x = np.random.default_rng(0).normal(size=(30, 8, 8)).astype(np.float32)
    y = np.arange(30) % 2
    body = assert_arrays_dataset(api, npz_bytes(x=x, y=y), "digits.npz", "digits", "npz", 30)
    assert body["columns"] == []
    arrays = body["arrays"]
    # [N, 8, 8] with H == W reads as one-channel images.
    assert arrays["kind"] == "image"
    assert arrays["shape"] == [1, 8, 8]
    assert arrays["n"] == 30
    assert arrays["min"] == float(x.min()) and arrays["max"] == float(x.max())
    assert arrays["target"] == {
        "type": "classes",
        "classes": [{"label": 0, "count": 15}, {"label": 1, "count": 15}],
    }
    assert api.get(f"/v1/datasets/{body['id']}").json()["arrays"] == arrays


def test_upload_npz_sequence_keeps_its_shape(api: Api) -> None:
    x = np.zeros((12, 20, 2), dtype=np.float32)
    response = api.upload(npz_bytes(x=x, y=np.linspace(0, 1, 12)), "series.npz")
    assert response.status_code == 201, response.text
    arrays = response.json()["arrays"]
    assert arrays["kind"] == "sequence"
    assert arrays["shape"] == [20, 2]
    assert arrays["target"]["type"] == "numeric"


def test_upload_npz_with_an_object_array_is_422(api: Api, backend: Backend) -> None:
    labels = np.empty(3, dtype=object)
    labels[:] = ["a", 1, None]
    # np.savez pickles an object array; the upload must refuse it, never unpickle it.
    content = npz_bytes(x=np.zeros((3, 4), dtype=np.float32), y=labels)
    error = assert_refused(api, backend, content, "objects.npz")
    assert "'y'" in error["message"] and "object" in error["message"]


def test_upload_npz_without_x_is_422(api: Api, backend: Backend) -> None:
    error = assert_refused(api, backend, npz_bytes(features=np.zeros((3, 4))), "no_x.npz")
    assert "'x'" in error["message"] and "features" in error["message"]


# --- image ZIP --------------------------------------------------------------------------------


def test_upload_image_zip_has_a_class_per_folder(api: Api) -> None:
    body = assert_arrays_dataset(api, zip_bytes(two_classes()), "pets.zip", "pets", "image_zip", 6)
    arrays = body["arrays"]
    assert arrays["kind"] == "image"
    assert arrays["shape"] == [1, 8, 8]  # grayscale PNGs: one channel
    assert arrays["dtype"] == "uint8"
    assert arrays["target"]["classes"] == [
        {"label": "cats", "count": 3},
        {"label": "dogs", "count": 3},
    ]


def test_upload_image_zip_under_one_root_folder(api: Api) -> None:
    response = api.upload(zip_bytes(two_classes(prefix="pets/")), "pets.zip")
    assert response.status_code == 201, response.text
    labels = [c["label"] for c in response.json()["arrays"]["target"]["classes"]]
    assert labels == ["cats", "dogs"]


def test_upload_zip_with_a_parent_path_member_is_422(api: Api, backend: Backend) -> None:
    members = {**two_classes(), "../evil.png": png_bytes(0)}
    error = assert_refused(api, backend, zip_bytes(members), "evil.zip")
    assert "'../evil.png'" in error["message"]


def test_upload_zip_without_images_is_422(api: Api, backend: Backend) -> None:
    members = {"cats/readme.txt": b"no pictures", "dogs/notes.md": b"none here"}
    error = assert_refused(api, backend, zip_bytes(members), "empty.zip")
    assert "no PNG or JPEG" in error["message"]


def test_upload_zip_with_one_class_folder_is_422(api: Api, backend: Backend) -> None:
    members = {f"cats/{i}.png": png_bytes(i) for i in range(3)}
    error = assert_refused(api, backend, zip_bytes(members), "cats.zip")
    assert "'cats'" in error["message"]
