from __future__ import annotations

from tests.conftest import Backend, running_backend


def test_healthz_needs_no_key(backend: Backend) -> None:
    response = backend.client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_readyz_reports_database_broker_and_store(backend: Backend) -> None:
    response = backend.client.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json()["checks"] == {"database": "ok", "broker": "ok", "store": "ok"}


def test_readyz_is_503_when_the_broker_is_unreachable(tmp_path) -> None:
    # Nothing listens on port 1: the broker check must fail, the others pass.
    with running_backend("sqlite", tmp_path, broker_url="redis://127.0.0.1:1/0") as backend:
        response = backend.client.get("/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["database"] == "ok" and checks["store"] == "ok"
    assert checks["broker"].startswith("unreachable")


def metric_samples(text: str) -> list:
    from prometheus_client.parser import text_string_to_metric_families

    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def test_metrics_need_no_key_and_count_requests_by_route_template(backend: Backend) -> None:
    backend.client.get("/v1/jobs/job_does_not_exist")
    response = backend.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = metric_samples(response.text)
    routes = {s.labels["route"] for s in samples if s.name == "trainyard_http_requests_total"}
    assert "/v1/jobs/{job_id}" in routes
    assert "job_does_not_exist" not in response.text
    states = {s.labels["state"] for s in samples if s.name == "trainyard_jobs"}
    assert states == {"queued", "running", "succeeded", "failed", "cancelled"}
    queues = {s.labels["queue"] for s in samples if s.name == "trainyard_queue_depth"}
    assert queues == {"cpu", "gpu"}


def test_a_path_no_route_matches_is_counted_as_unmatched(backend: Backend) -> None:
    backend.client.get("/no/such/path/12345")
    samples = metric_samples(backend.client.get("/metrics").text)
    routes = {s.labels["route"] for s in samples if s.name == "trainyard_http_requests_total"}
    assert "unmatched" in routes and not any("12345" in route for route in routes)


def test_metrics_are_not_in_the_openapi_document(backend: Backend) -> None:
    assert "/metrics" not in backend.client.get("/openapi.json").json()["paths"]
