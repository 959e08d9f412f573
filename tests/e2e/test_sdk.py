"""The Python SDK against a real `trainyard api` and worker: typed results, pages, retries on
the service's own rate limiter, idempotency keys, errors, and the async client end to end."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

import pytest

from client import (
    AsyncClient,
    Client,
    Dataset,
    Job,
    NotFound,
    Page,
    RateLimited,
    Retry,
    ValidationError,
)
from tests.reliability.servers import running_service
from tests.sample_data import csv_bytes, mixed_classification

pytestmark = pytest.mark.e2e
KEY = "ty_sdk_" + "s" * 24
SPEC = {"task": "classification", "target": "label", "training": {"epochs": 3}}
# A limit the ordinary calls stay under, and a burst the rate test goes over at once.
LIMITS = {"rate_limit_per_second": "20", "rate_limit_burst": "5"}


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    with running_service(tmp_path_factory.mktemp("sdk"), KEY, **LIMITS) as service:
        service.worker("worker")
        yield service


@pytest.fixture
def client(service):
    with Client(service.base_url, KEY) as client:
        yield client


def upload(client: Client, n: int = 120, seed: int = 0, **options) -> Dataset:
    # The service answers an upload of the same bytes with the same dataset: vary the seed
    # for distinct ones.
    rows = mixed_classification(n=n, seed=seed)
    return client.upload_dataset(csv_bytes(rows), "m.csv", **options)


def test_results_are_typed_and_keep_the_dict_reading(client: Client) -> None:
    dataset = upload(client)
    assert isinstance(dataset, Dataset) and dataset.rows == 120
    assert isinstance(dataset.created_at, datetime)
    assert {c.name for c in dataset.columns} >= {"x1", "colour", "label"}
    assert dataset["id"] == dataset.id and "rows" in dataset  # the first SDK's dicts
    job = client.wait_for_job(client.create_job(dataset.id, SPEC).id, timeout=180)
    assert isinstance(job, Job) and job.status == "succeeded" and job.progress.epoch == 3
    assert job.model_id and client.get_model(job.model_id).id == job.model_id
    assert [e.epoch for e in client.job_metrics(job.id).epochs] == [1, 2, 3]


def test_iterators_walk_every_page(client: Client) -> None:
    ids = {upload(client, n=30, seed=100 + i).id for i in range(5)}
    page = client.list_datasets(limit=2)
    assert isinstance(page, Page) and len(page.items) == 2 and page.total >= 5
    walked = [d.id for d in client.iter_datasets(page_size=2)]
    assert len(walked) == page.total == len(set(walked)) and ids <= set(walked)


def test_one_idempotency_key_makes_one_resource(client: Client) -> None:
    before = client.list_datasets(limit=1).total
    first = upload(client, seed=1, idempotency_key="sdk-upload-1")
    # Other bytes under the same key: the first dataset, nothing new.
    again = upload(client, seed=2, idempotency_key="sdk-upload-1")
    assert again.id == first.id and client.list_datasets(limit=1).total == before + 1
    job = client.create_job(first.id, SPEC, idempotency_key="sdk-job-1")
    assert client.create_job(first.id, SPEC, idempotency_key="sdk-job-1").id == job.id
    # Without a key each call still gets its own (automatic) one: two calls, two jobs.
    assert client.create_job(first.id, SPEC).id != client.create_job(first.id, SPEC).id


def test_errors_carry_the_api_code_and_details(client: Client) -> None:
    with pytest.raises(NotFound) as missing:
        client.get_job("job_does_not_exist")
    assert (missing.value.status, missing.value.code) == (404, "not_found")
    dataset = upload(client)
    bad = {"task": "classification", "target": "label", "model": {"family": "mlp", "dropout": 2}}
    with pytest.raises(ValidationError) as refused:
        client.validate_spec(dataset.id, bad)
    assert "spec.model.dropout" in [d["field"] for d in refused.value.details]


def test_the_rate_limiter_429_is_waited_out(service) -> None:
    with Client(service.base_url, KEY) as setup:
        key = setup.create_key("rate").secret  # a bucket of its own
    impatient = Client(service.base_url, key, retry=Retry(attempts=1))
    with impatient, pytest.raises(RateLimited) as limited:
        for _ in range(20):
            impatient.list_datasets(limit=1)
    assert limited.value.code == "rate_limited" and limited.value.retry_after >= 1
    time.sleep(1)
    statuses: list[int] = []
    with Client(service.base_url, key) as patient:
        patient.http.event_hooks["response"].append(lambda r: statuses.append(r.status_code))
        answers = [patient.list_datasets(limit=1) for _ in range(20)]
    # Every call answered, some of them only after a 429 and its Retry-After.
    assert len(answers) == 20 and 429 in statuses and statuses.count(200) == 20


def test_the_async_client_submits_waits_and_streams(service) -> None:
    async def main() -> tuple[Job, list, list[Job]]:
        async with AsyncClient(service.base_url, KEY) as client:
            dataset = await client.upload_dataset(csv_bytes(mixed_classification(n=120)))
            job = await client.create_job(dataset.id, SPEC)
            events = [event async for event in client.stream_job(job.id)]
            ended = await client.wait_for_job(job.id, timeout=60)
            listed = [j async for j in client.iter_jobs(status="succeeded", page_size=1)]
            return ended, events, listed

    ended, events, listed = asyncio.run(main())
    assert ended.status == "succeeded"
    assert [e.data["epoch"] for e in events if e.type == "progress"] == [1, 2, 3]
    assert events[-1].type == "end" and events[-1].data == {"status": "succeeded"}
    assert ended.id in {j.id for j in listed}
