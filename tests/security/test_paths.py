"""A filename or a dataset name is only a label: store paths come from ids, so a name such as
`../../etc/passwd` or an absolute path writes nothing outside the data folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import Api, running_backend
from tests.sample_data import csv_bytes, linear_regression


def _files(folder: Path, leave_out: Path) -> dict[str, int]:
    """Every file under `folder` but those under `leave_out`, with its modification time."""
    found = {}
    for parent, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if Path(parent, d) != leave_out]
        for name in names:
            path = Path(parent, name)
            found[str(path)] = path.stat().st_mtime_ns
    return found


@pytest.fixture
def layout(tmp_path: Path):
    """A data folder with a sibling folder beside it, as a traversal would reach."""
    data_dir = tmp_path / "data"
    sibling = tmp_path / "sibling"
    sibling.mkdir()
    data_dir.mkdir()
    (sibling / "existing.csv").write_text("do not touch\n")
    with running_backend("sqlite", data_dir) as backend:
        yield Api(backend.client, backend.new_project_key()), data_dir, sibling


def test_traversing_or_absolute_filenames_write_nothing_outside_the_data_folder(layout) -> None:
    api, data_dir, sibling = layout
    outside_before = _files(data_dir.parent, leave_out=data_dir)
    passwd_before = Path("/etc/passwd").stat().st_mtime_ns
    names = [
        "../../etc/passwd",
        "../sibling/existing.csv",
        "../../sibling/new.csv",
        str(sibling / "absolute.csv"),
        "/etc/passwd",
        "..\\..\\sibling\\windows.csv",
        "store/../../../sibling/dots.csv",
    ]
    created = []
    for n, filename in enumerate(names):
        response = api.upload(csv_bytes(linear_regression(n=20 + n)), filename)
        assert response.status_code == 201, (filename, response.text)
        created.append(response.json())

    assert _files(data_dir.parent, leave_out=data_dir) == outside_before
    assert (sibling / "existing.csv").read_text() == "do not touch\n"
    assert Path("/etc/passwd").stat().st_mtime_ns == passwd_before
    # The name is the last path segment, a label; the store holds the data under the id.
    assert [d["name"] for d in created] == [
        "passwd",
        "existing",
        "new",
        "absolute",
        "passwd",
        "windows",
        "dots",
    ]
    store = data_dir / "store" / "datasets"
    assert sorted(p.name for p in store.iterdir()) == sorted(d["id"] for d in created)
    for dataset in created:
        for path in (store / dataset["id"]).rglob("*"):
            assert path.resolve().is_relative_to(store.resolve() / dataset["id"])


def test_a_traversing_name_field_is_only_a_label(layout) -> None:
    api, data_dir, sibling = layout
    outside_before = _files(data_dir.parent, leave_out=data_dir)
    response = api.upload(
        csv_bytes(linear_regression(n=30)), "data.csv", name="../../sibling/evil.csv"
    )
    assert response.status_code == 201, response.text
    assert response.json()["name"] == "evil.csv"
    assert _files(data_dir.parent, leave_out=data_dir) == outside_before
    assert not (sibling / "evil.csv").exists()


def test_ids_in_paths_that_traverse_find_nothing(layout) -> None:
    api, _, _ = layout
    for bad in ("..%2F..%2Fetc%2Fpasswd", "..", "ds_..", "%2Fetc%2Fpasswd"):
        response = api.get(f"/v1/datasets/{bad}")
        assert response.status_code == 404, (bad, response.text)
        assert response.json()["error"]["code"] == "not_found"
