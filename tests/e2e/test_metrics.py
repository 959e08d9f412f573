"""`GET /metrics` end to end: a real HTTP server and a real worker process (`trainyard run` on
the embedded default; `trainyard api` + `trainyard worker` on PostgreSQL and Redis). After a
small training job and a predict call, the API's scrape, parsed as Prometheus parses it,
shows the API's own requests and predict batches and the worker's training and heartbeat:
the processes of one machine add up through the shared metrics folder."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from client import Client
from tests.e2e.fleet import (
    api_and_worker,
    free_port,
    postgres_redis_env,
    service_env,
    stop,
    trainyard,
    wait_until_ready,
)
from tests.sample_data import csv_bytes, mixed_classification

pytestmark = pytest.mark.e2e
KEY = "ty_e2e_" + "m" * 24


@contextmanager
def service(kind: str, tmp_path: Path) -> Iterator[tuple[str, str | None]]:
    """The API's URL, and the URL of the worker's own metrics port where it has one."""
    if kind == "sqlite":
        port = free_port()
        run = trainyard("run", env=service_env(tmp_path / "data", port, KEY), log=tmp_path / "log")
        try:
            wait_until_ready(f"http://127.0.0.1:{port}", [run])
            yield f"http://127.0.0.1:{port}", None
        finally:
            stop(run)
        return
    # As a worker on a machine of its own would: its own /metrics port too.
    worker_port = free_port()
    with (
        postgres_redis_env(tmp_path / "data", KEY, worker_metrics_port=str(worker_port)) as env,
        api_and_worker(env, tmp_path) as url,
    ):
        yield url, f"http://127.0.0.1:{worker_port}"


def scrape(base_url: str) -> tuple[str, dict[str, list]]:
    """The text of `/metrics` and its samples by sample name, as Prometheus parses them."""
    response = httpx.get(f"{base_url}/metrics", timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples: dict[str, list] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return response.text, samples


def value(samples: dict[str, list], name: str, **labels: str) -> float:
    found = [s.value for s in samples.get(name, []) if labels.items() <= s.labels.items()]
    assert found, f"no {name} with {labels}; have {[s.labels for s in samples.get(name, [])]}"
    return sum(found)


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_metrics_show_requests_training_heartbeats_and_predict_batches(kind, tmp_path) -> None:
    started = time.time()
    with service(kind, tmp_path) as (base_url, worker_url), Client(base_url, KEY) as client:
        dataset = client.upload_dataset(csv_bytes(mixed_classification(n=200)), "train.csv")
        spec = {"task": "classification", "target": "label", "training": {"epochs": 5}}
        job = client.wait_for_job(client.create_job(dataset["id"], spec)["id"])
        assert job["status"] == "succeeded", job
        client.get_job(job["id"])
        client.predict(job["model_id"], [{"x1": 0.5, "x2": -0.2, "colour": "red"}])
        text, samples = scrape(base_url)
        worker_samples = scrape(worker_url)[1] if worker_url else None

    # Requests, by route template: never the raw path with its id.
    route = "/v1/jobs/{job_id}"
    assert value(samples, "trainyard_http_requests_total", route=route, status="200") >= 2
    assert job["id"] not in text and dataset["id"] not in text and job["model_id"] not in text
    assert value(samples, "trainyard_http_request_duration_seconds_count", route=route) >= 2
    buckets = [s for s in samples["trainyard_http_request_duration_seconds_bucket"]]
    assert any(s.labels["route"] == route and s.labels["le"] == "+Inf" for s in buckets)
    predict_route = "/v1/models/{ref:path}/predict"
    assert value(samples, "trainyard_http_requests_total", route=predict_route) == 1

    # The API process's predict batching.
    assert value(samples, "trainyard_predict_batch_rows_count") >= 1
    assert value(samples, "trainyard_predict_batch_rows_sum") >= 1
    assert value(samples, "trainyard_predict_queue_wait_seconds_count") >= 1

    # Counted in the database and the broker at scrape time.
    assert value(samples, "trainyard_jobs", state="succeeded") == 1
    assert value(samples, "trainyard_jobs", state="queued") == 0
    assert value(samples, "trainyard_queue_depth", queue="cpu") == 0

    # The worker process's, through the shared metrics folder.
    (throughput,) = samples["trainyard_training_samples_per_second"]
    worker = throughput.labels["worker"]
    assert throughput.value > 0
    assert (
        value(samples, "trainyard_training_epochs_total", worker=worker) == job["progress"]["epoch"]
    )
    assert value(samples, "trainyard_training_samples_total", worker=worker) > 0
    heartbeat = value(samples, "trainyard_worker_heartbeat_timestamp_seconds", worker=worker)
    assert started <= heartbeat <= time.time()
    # A CPU-only worker has no GPU to report.
    assert "trainyard_gpu_memory_allocated_bytes" not in samples

    if worker_samples is not None:  # the worker's own port shows its machine's metrics
        assert value(worker_samples, "trainyard_training_samples_per_second", worker=worker) > 0
        assert value(worker_samples, "trainyard_worker_heartbeat_timestamp_seconds") == heartbeat


def test_two_api_processes_counters_add_up(tmp_path) -> None:
    """Two API processes on one machine (one metrics folder): each one's `/metrics` counts
    the requests both answered."""
    metrics_dir = str(tmp_path / "metrics")
    envs = [
        service_env(tmp_path / f"data{i}", free_port(), KEY, metrics_dir=metrics_dir)
        for i in range(2)
    ]
    procs = [trainyard("api", env=env, log=tmp_path / f"api{i}.log") for i, env in enumerate(envs)]
    urls = [f"http://127.0.0.1:{env['TRAINYARD_PORT']}" for env in envs]
    try:
        for url in urls:
            wait_until_ready(url, procs)
        for url, count in zip(urls, (3, 2), strict=True):
            for _ in range(count):
                assert httpx.get(f"{url}/healthz").status_code == 200
        totals = [
            value(scrape(url)[1], "trainyard_http_requests_total", route="/healthz") for url in urls
        ]
    finally:
        for proc in procs:
            stop(proc)
    assert totals == [5, 5]
