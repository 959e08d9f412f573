"""The database is the source of truth: Redis restarted empty (no persistence) while 50 jobs
wait in it loses every message, and the workers' reconciler sends them again."""

from __future__ import annotations

import time

import pytest

from client import Client
from tests.e2e.fleet import free_port, service_env, stop, trainyard, wait_until_ready
from tests.reliability.servers import redis_server
from tests.sample_data import csv_bytes, mixed_classification

pytestmark = pytest.mark.reliability
KEY = "ty_rel_" + "r" * 24
JOBS = 50


def test_jobs_whose_messages_redis_lost_are_sent_again_and_all_complete(tmp_path) -> None:
    with redis_server(tmp_path / "redis.log") as redis:
        port = free_port()
        env = service_env(
            tmp_path / "data",
            port,
            KEY,
            broker_url=redis.url,
            lease_seconds="4",
            requeue_after_seconds="4",
        )
        base_url = f"http://127.0.0.1:{port}"
        api = trainyard("api", env=env, log=tmp_path / "api.log")
        workers = []
        try:
            wait_until_ready(base_url, [api])
            with Client(base_url, KEY) as client:
                dataset = client.upload_dataset(csv_bytes(mixed_classification(n=120)), "m.csv")
                spec = {"task": "classification", "target": "label", "training": {"epochs": 1}}
                job_ids = [client.create_job(dataset["id"], spec)["id"] for _ in range(JOBS)]
                assert redis.client().llen("cpu") == JOBS

                redis.kill()
                redis.start()
                assert redis.client().llen("cpu") == 0
                restarted_at = time.monotonic()

                workers = [
                    trainyard("worker", env=env, log=tmp_path / f"worker{i}.log") for i in (1, 2)
                ]
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
        finally:
            for proc in workers:
                stop(proc)
            stop(api)
    print(f"{JOBS} jobs done {took:.1f} s after Redis came back empty")
    assert [job["status"] for job in finished] == ["succeeded"] * JOBS
    # Each ran once: the duplicate messages a resend may cause are fenced off by the claim.
    assert {job["attempts"] for job in finished} == {1}
