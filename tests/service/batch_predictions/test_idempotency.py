"""`Idempotency-Key` on `POST /v1/models/{ref}/batch-predictions`, as on jobs and datasets: a
retried submit queues nothing new. The first answer is 202; a replay answers 200 with the batch
prediction the first request created."""

from __future__ import annotations

import pytest

from service.idempotency import service as idempotency
from tests.conftest import Api, Backend, at_once
from tests.sample_data import csv_bytes, mixed_classification


def _create(api: Api, model_id: str, dataset_id: str, key: str | None, **body):
    headers = {**api.headers, **({"Idempotency-Key": key} if key else {})}
    return api.client.post(
        f"/v1/models/{model_id}/batch-predictions",
        json={"dataset_id": dataset_id, **body},
        headers=headers,
    )


def _batches_in_project(api: Api) -> int:
    return api.get("/v1/batch-predictions").json()["total"]


def test_the_same_key_twice_creates_one_batch_prediction(
    api: Api, trained_model_id: str, dataset_id: str
) -> None:
    first = _create(api, trained_model_id, dataset_id, "retry-1")
    assert first.status_code == 202, first.text
    again = _create(api, trained_model_id, dataset_id, "retry-1")
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["format"] == "parquet"
    # Whatever the second body says: the key names the request, not its content.
    changed = _create(api, trained_model_id, dataset_id, "retry-1", format="csv")
    assert changed.status_code == 200
    assert changed.json()["id"] == first.json()["id"]
    assert changed.json()["format"] == "parquet"
    assert _batches_in_project(api) == 1


def test_without_a_key_or_with_another_key_each_post_creates_a_batch_prediction(
    api: Api, trained_model_id: str, dataset_id: str
) -> None:
    answers = [_create(api, trained_model_id, dataset_id, key) for key in (None, None, "a", "b")]
    assert [a.status_code for a in answers] == [202] * 4
    assert len({a.json()["id"] for a in answers}) == 4


def test_projects_use_the_same_key_independently(
    api: Api, other_api: Api, trained_model_id: str, dataset_id: str, submit, run_job
) -> None:
    mine = _create(api, trained_model_id, dataset_id, "shared-key")
    assert mine.status_code == 202, mine.text
    # The other project's own model and data, under the same key.
    other_dataset = other_api.upload(csv_bytes(mixed_classification()), "m.csv").json()["id"]
    job = other_api.post(
        "/v1/jobs",
        json={
            "dataset_id": other_dataset,
            "spec": {"task": "classification", "target": "label", "training": {"epochs": 1}},
        },
    ).json()
    assert run_job(job["id"]) == "succeeded"
    other_model = other_api.get(f"/v1/jobs/{job['id']}").json()["model_id"]
    theirs = _create(other_api, other_model, other_dataset, "shared-key")
    assert theirs.status_code == 202, theirs.text
    assert theirs.json()["id"] != mine.json()["id"]
    assert other_api.get(f"/v1/batch-predictions/{mine.json()['id']}").status_code == 404


def test_a_refused_request_leaves_its_key_free(
    api: Api, trained_model_id: str, dataset_id: str
) -> None:
    refused = _create(api, trained_model_id, dataset_id, "after-422", id_column="no_such_column")
    assert refused.status_code == 422
    accepted = _create(api, trained_model_id, dataset_id, "after-422")
    assert accepted.status_code == 202, accepted.text


def test_a_key_over_200_characters_is_a_422_naming_the_header(
    api: Api, trained_model_id: str, dataset_id: str
) -> None:
    response = _create(api, trained_model_id, dataset_id, "k" * 201)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_input"
    assert error["details"][0]["field"] == "Idempotency-Key"
    assert _create(api, trained_model_id, dataset_id, "k" * 200).status_code == 202


def test_jobs_and_batch_predictions_keep_their_keys_apart(
    api: Api, trained_model_id: str, dataset_id: str
) -> None:
    headers = {**api.headers, "Idempotency-Key": "same-key-both-kinds"}
    spec = {"task": "classification", "target": "label", "training": {"epochs": 1}}
    job = api.client.post(
        "/v1/jobs", json={"dataset_id": dataset_id, "spec": spec}, headers=headers
    )
    batch = _create(api, trained_model_id, dataset_id, "same-key-both-kinds")
    assert job.status_code == 202 and batch.status_code == 202
    assert batch.json()["id"].startswith("bp_")


def test_a_request_that_loses_the_race_returns_the_winner_and_queues_nothing(
    api: Api,
    trained_model_id: str,
    dataset_id: str,
    backend: Backend,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two requests with one key both pass the first look-up; the unique constraint lets one
    insert the key, and the other answers with that one's batch prediction."""
    first = _create(api, trained_model_id, dataset_id, "raced")
    assert first.status_code == 202
    # The second request does not see the first's key when it looks, as if it looked before
    # the first one committed.
    monkeypatch.setattr(idempotency, "earlier_resource", lambda *args: None)
    enqueued: list[str] = []
    monkeypatch.setattr(
        backend.app.state.queue,
        "enqueue",
        lambda task, batch_id, queue: enqueued.append(batch_id),
    )
    second = _create(api, trained_model_id, dataset_id, "raced")
    assert second.status_code == 200, second.text
    assert second.json()["id"] == first.json()["id"]
    assert enqueued == []
    assert _batches_in_project(api) == 1


def test_concurrent_requests_with_one_key_create_one_batch_prediction(
    api: Api, trained_model_id: str, dataset_id: str
) -> None:
    answers = at_once(6, lambda: _create(api, trained_model_id, dataset_id, "stampede"))
    assert all(a.status_code in (200, 202) for a in answers), [a.text for a in answers]
    assert [a.status_code for a in answers].count(202) == 1
    assert len({a.json()["id"] for a in answers}) == 1
    assert _batches_in_project(api) == 1
