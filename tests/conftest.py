"""Shared fixtures: real databases (SQLite and PostgreSQL), real brokers, a project per test.

PostgreSQL and Redis are this machine's shared servers (`.ci/run` starts them). A test that
needs them fails with a clear message when they are down; none is skipped.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from service.app import create_app
from service.auth.service import create_project
from service.core.database import transaction
from service.core.migrate import upgrade_database
from service.core.settings import Settings

POSTGRES_URL = os.environ.get(
    "TRAINYARD_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("TRAINYARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
# The test services' admin key (TRAINYARD_ADMIN_KEY), so the admin routes are on in every
# backend; a test that needs them off builds settings without it.
ADMIN_KEY = "admin-" + "a" * 26


def require_postgres() -> None:
    try:
        engine = create_engine(POSTGRES_URL)
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at {POSTGRES_URL} ({exc}); start it (see .ci/run) "
            "or set TRAINYARD_TEST_POSTGRES_URL",
            pytrace=False,
        )


def require_redis() -> None:
    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=2).ping()
    except Exception as exc:
        pytest.fail(
            f"Redis is not reachable at {REDIS_URL} ({exc}); start it (see .ci/run) "
            "or set TRAINYARD_TEST_REDIS_URL",
            pytrace=False,
        )


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """A new, empty database on the shared server, dropped afterwards."""
    require_postgres()
    name = f"trainyard_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def redis_key_prefix() -> Iterator[str]:
    """A key prefix of our own on the shared Redis, its keys deleted afterwards."""
    require_redis()
    prefix = f"trainyard-test-{uuid.uuid4().hex[:12]}:"
    try:
        yield prefix
    finally:
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)


@dataclass
class Backend:
    name: str
    settings: Settings
    app: FastAPI
    client: TestClient

    def new_project_key(self) -> str:
        with transaction(self.app.state.session_factory) as session:
            _, secret = create_project(session, f"test-{uuid.uuid4().hex[:8]}")
        return secret


@contextmanager
def backend_settings(kind: str, data_dir: Path, **overrides) -> Iterator[Settings]:
    """Settings for the embedded default (`sqlite`) or PostgreSQL + Redis (`postgres`)."""
    overrides = {"admin_key": ADMIN_KEY, **overrides}
    if kind == "sqlite":
        yield Settings(data_dir=data_dir, **overrides)
        return
    with fresh_postgres_database() as database_url, redis_key_prefix() as prefix:
        yield Settings(
            data_dir=data_dir,
            database_url=database_url,
            broker_url=REDIS_URL,
            broker_key_prefix=prefix,
            **overrides,
        )


@contextmanager
def running_backend(kind: str, data_dir: Path, **overrides) -> Iterator[Backend]:
    with backend_settings(kind, data_dir, **overrides) as settings:
        upgrade_database(settings.effective_database_url)
        app = create_app(settings)
        with TestClient(app) as client:
            yield Backend(kind, settings, app, client)
        app.state.db_engine.dispose()


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def backend(request, tmp_path_factory) -> Iterator[Backend]:
    with running_backend(request.param, tmp_path_factory.mktemp(request.param)) as backend:
        yield backend


class Api:
    """A TestClient that sends one project's API key."""

    def __init__(self, client: TestClient, key: str) -> None:
        self.client = client
        self.key = key
        self.headers = {"Authorization": f"Bearer {key}"}

    def get(self, url: str, **kwargs):
        return self.client.get(url, headers=self.headers, **kwargs)

    def post(self, url: str, **kwargs):
        return self.client.post(url, headers=self.headers, **kwargs)

    def upload(self, content: bytes, filename: str = "data.csv", **fields):
        files = {"file": (filename, content, "application/octet-stream")}
        return self.post("/v1/datasets", files=files, data=fields or None)


def assert_invalid(response, field: str) -> dict:
    """A 422 whose details name `field` (among others, maybe); the error, for more checks."""
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert field in [d["field"] for d in error["details"]], error
    return error


@pytest.fixture
def api(backend: Backend) -> Api:
    """A fresh project on the backend: its rows are invisible to every other test."""
    return Api(backend.client, backend.new_project_key())


@pytest.fixture
def other_api(backend: Backend) -> Api:
    """A second project, for isolation checks."""
    return Api(backend.client, backend.new_project_key())


def at_once(count: int, call: Callable[[], Any]) -> list[Any]:
    """`call()` from `count` threads released together (a race), and what each returned."""
    barrier = threading.Barrier(count)
    answers: list[Any] = []

    def run() -> None:
        barrier.wait()
        answers.append(call())

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers
