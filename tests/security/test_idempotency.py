"""`Idempotency-Key` on `POST /v1/jobs` and `POST /v1/datasets`: a retried create creates
nothing new. The first answer is 202 (job) or 201 (dataset); a replay answers 200 with the
resource the first request created."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from service.core.database import transaction
from service.idempotency import service as idempotency
from service.idempotency.tables import IdempotencyKey
from service.jobs.tables import Job
from tests.conftest import Api, Backend, at_once
from tests.sample_data import csv_bytes, linear_regression, mixed_classification

SPEC = {"task": "classification", "target": "label", "training": {"epochs": 1}}


def _create_job(api: Api, dataset_id: str, key: str | None, **spec):
    headers = {**api.headers, **({"Idempotency-Key": key} if key else {})}
    body = {"dataset_id": dataset_id, "spec": {**SPEC, **spec}}
    return api.client.post("/v1/jobs", json=body, headers=headers)


def _upload(api: Api, content: bytes, key: str | None, filename: str = "data.csv"):
    headers = {**api.headers, **({"Idempotency-Key": key} if key else {})}
    files = {"file": (filename, content, "text/csv")}
    return api.client.post("/v1/datasets", files=files, headers=headers)


def _jobs_in_project(api: Api) -> int:
    return api.get("/v1/jobs").json()["total"]


def test_the_same_key_twice_creates_one_job(api: Api, dataset_id: str) -> None:
    first = _create_job(api, dataset_id, "retry-1")
    assert first.status_code == 202, first.text
    again = _create_job(api, dataset_id, "retry-1")
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]
    # Whatever the second body says: the key names the request, not its content.
    changed = _create_job(api, dataset_id, "retry-1", training={"epochs": 2})
    assert changed.json()["id"] == first.json()["id"]
    assert _jobs_in_project(api) == 1


def test_without_a_key_or_with_another_key_each_post_creates_a_job(
    api: Api, dataset_id: str
) -> None:
    ids = {
        _create_job(api, dataset_id, None).json()["id"],
        _create_job(api, dataset_id, None).json()["id"],
        _create_job(api, dataset_id, "a").json()["id"],
        _create_job(api, dataset_id, "b").json()["id"],
    }
    assert len(ids) == 4


def test_projects_use_the_same_key_independently(api: Api, other_api: Api, dataset_id: str) -> None:
    other_dataset = other_api.upload(csv_bytes(mixed_classification()), "m.csv").json()["id"]
    mine = _create_job(api, dataset_id, "shared-key")
    theirs = _create_job(other_api, other_dataset, "shared-key")
    assert mine.status_code == theirs.status_code == 202
    assert mine.json()["id"] != theirs.json()["id"]
    assert other_api.get(f"/v1/jobs/{mine.json()['id']}").status_code == 404


def test_a_refused_request_leaves_its_key_free(api: Api, dataset_id: str) -> None:
    refused = _create_job(api, dataset_id, "after-422", target="no_such_column")
    assert refused.status_code == 422
    accepted = _create_job(api, dataset_id, "after-422")
    assert accepted.status_code == 202, accepted.text


def test_a_key_over_200_characters_is_a_422_naming_the_header(api: Api, dataset_id: str) -> None:
    response = _create_job(api, dataset_id, "k" * 201)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_input"
    assert "Idempotency-Key" in error["message"]
    assert error["details"][0]["field"] == "Idempotency-Key"
    assert _create_job(api, dataset_id, "k" * 200).status_code == 202
    assert _upload(api, b"x,y\n1,2\n", "k" * 201).status_code == 422


def test_the_same_key_twice_creates_one_dataset(api: Api) -> None:
    first = _upload(api, csv_bytes(mixed_classification(n=50)), "upload-1")
    assert first.status_code == 201, first.text
    # Other bytes with the same key: still the first dataset, and the body is not stored.
    again = _upload(api, csv_bytes(linear_regression(n=50)), "upload-1")
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]
    assert api.get("/v1/datasets").json()["total"] == 1


def test_a_key_on_bytes_uploaded_before_answers_that_dataset_and_remembers_it(
    api: Api,
) -> None:
    content = csv_bytes(mixed_classification(n=50))
    first = _upload(api, content, None)
    duplicate = _upload(api, content, "dup-key")
    assert duplicate.status_code == 200
    assert duplicate.json()["id"] == first.json()["id"]
    other = _upload(api, csv_bytes(linear_regression(n=50)), "dup-key")
    assert other.json()["id"] == first.json()["id"]


def test_jobs_and_datasets_keep_their_keys_apart(api: Api, dataset_id: str) -> None:
    job = _create_job(api, dataset_id, "same-key-both-kinds")
    dataset = _upload(api, csv_bytes(linear_regression(n=50)), "same-key-both-kinds")
    assert job.status_code == 202 and dataset.status_code == 201


def test_a_request_that_loses_the_race_returns_the_winner(
    api: Api, dataset_id: str, backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two requests with one key both pass the first look-up; the unique constraint lets one
    insert the key, and the other answers with that one's job and queues nothing."""
    first = _create_job(api, dataset_id, "raced")
    assert first.status_code == 202
    # The second request does not see the first's key when it looks, as if it looked before
    # the first one committed.
    monkeypatch.setattr(idempotency, "earlier_resource", lambda *args: None)
    enqueued: list[str] = []
    monkeypatch.setattr(
        backend.app.state.queue, "enqueue", lambda task, job_id, queue: enqueued.append(job_id)
    )
    second = _create_job(api, dataset_id, "raced")
    assert second.status_code == 200, second.text
    assert second.json()["id"] == first.json()["id"]
    assert enqueued == []
    assert _jobs_in_project(api) == 1


def test_an_upload_that_loses_the_race_returns_the_winner_and_keeps_nothing(
    api: Api, backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _upload(api, csv_bytes(mixed_classification(n=50)), "raced-upload")
    assert first.status_code == 201
    store = backend.settings.resolved_data_dir / "store" / "datasets"
    stored = {p.name for p in store.iterdir()}
    monkeypatch.setattr(idempotency, "earlier_resource", lambda *args: None)
    second = _upload(api, csv_bytes(linear_regression(n=50)), "raced-upload")
    assert second.status_code == 200, second.text
    assert second.json()["id"] == first.json()["id"]
    assert {p.name for p in store.iterdir()} == stored
    assert api.get("/v1/datasets").json()["total"] == 1


def test_concurrent_requests_with_one_key_create_one_job(api: Api, dataset_id: str) -> None:
    answers = at_once(6, lambda: _create_job(api, dataset_id, "stampede"))
    assert all(a.status_code in (200, 202) for a in answers), [a.text for a in answers]
    assert [a.status_code for a in answers].count(202) == 1
    assert len({a.json()["id"] for a in answers}) == 1
    assert _jobs_in_project(api) == 1


def test_the_key_is_stored_beside_the_resource(api: Api, dataset_id: str, backend: Backend) -> None:
    job_id = _create_job(api, dataset_id, "stored").json()["id"]
    with transaction(backend.app.state.session_factory) as session:
        row = session.scalars(
            select(IdempotencyKey).where(IdempotencyKey.resource_id == job_id)
        ).one()
        assert (row.kind, row.key) == ("job", "stored")
        assert row.created_at is not None
        assert session.scalar(select(func.count()).select_from(Job).where(Job.id == job_id)) == 1
