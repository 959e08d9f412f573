"""PostgreSQL restarted (fast shutdown: every connection dropped) while a job trains: the
worker rides out the blip, the job completes, and no job is left `running` with no lease."""

from __future__ import annotations

import time

import httpx
import pytest

from client import Client
from tests.reliability.jobs import submit_slow_job, wait_for_epoch
from tests.reliability.servers import postgres_cluster, running_service

pytestmark = pytest.mark.reliability
KEY = "ty_rel_" + "d" * 24
EPOCHS = 8


def _job(client: Client, job_id: str) -> dict | None:
    """The job, or None while the API's database is restarting."""
    try:
        return client.get_job(job_id)
    except Exception:
        return None


def test_a_job_survives_a_database_restart_and_no_job_is_left_running_without_a_lease(
    tmp_path,
) -> None:
    with (
        postgres_cluster() as database,
        running_service(tmp_path, KEY, database_url=database.url, lease_seconds="10") as service,
        service.client() as client,
    ):
        service.worker()
        _, job = submit_slow_job(client, epochs=EPOCHS, rows=300)
        wait_for_epoch(client, job["id"], 2, timeout=90)

        database.restart()

        deadline = time.monotonic() + 120
        while (current := _job(client, job["id"])) is None or current["status"] in (
            "queued",
            "running",
        ):
            assert time.monotonic() < deadline, "the job never finished"
            time.sleep(0.2)
        history = client.job_metrics(job["id"])["epochs"]
        stuck = database.running_without_live_lease()
        ready = httpx.get(f"{service.base_url}/readyz", timeout=5).status_code
    assert current["status"] == "succeeded", current["error"]
    assert [e["epoch"] for e in history] == list(range(1, EPOCHS + 1))
    assert stuck == []
    assert ready == 200
