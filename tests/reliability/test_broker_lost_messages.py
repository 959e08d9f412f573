"""The database is the source of truth: Redis restarted empty (no persistence) while 50 jobs
wait in it loses every message, and the workers' reconciler sends them again."""

from __future__ import annotations

import time

import pytest

from tests.reliability.servers import redis_server, running_service
from tests.sample_data import csv_bytes, mixed_classification

pytestmark = pytest.mark.reliability
KEY = "ty_rel_" + "r" * 24
JOBS = 50


def test_jobs_whose_messages_redis_lost_are_sent_again_and_all_complete(tmp_path) -> None:
    with (
        redis_server(tmp_path / "redis.log") as redis,
        running_service(
            tmp_path, KEY, broker_url=redis.url, lease_seconds="4", requeue_after_seconds="4"
        ) as service,
        service.client() as client,
    ):
        dataset = client.upload_dataset(csv_bytes(mixed_classification(n=120)), "m.csv")
        spec = {"task": "classification", "target": "label", "training": {"epochs": 1}}
        job_ids = [client.create_job(dataset["id"], spec)["id"] for _ in range(JOBS)]
        assert redis.client().llen("cpu") == JOBS

        redis.kill()
        redis.start()
        assert redis.client().llen("cpu") == 0
        restarted_at = time.monotonic()

        # No worker until now: every message was still waiting in Redis when it was lost.
        for i in (1, 2):
            service.worker(f"worker{i}")
        deadline = time.monotonic() + 150
        pending = set(job_ids)
        while pending:
            assert time.monotonic() < deadline, f"{len(pending)} jobs never finished"
            pending = {
                job_id
                for job_id in pending
                if client.get_job(job_id)["status"] in ("queued", "running")
            }
            time.sleep(0.5)
        took = time.monotonic() - restarted_at
        finished = [client.get_job(job_id) for job_id in job_ids]
    print(f"{JOBS} jobs done {took:.1f} s after Redis came back empty")
    assert [job["status"] for job in finished] == ["succeeded"] * JOBS
    # Each ran once: the duplicate messages a resend may cause are fenced off by the claim.
    assert {job["attempts"] for job in finished} == {1}
