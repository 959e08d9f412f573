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
