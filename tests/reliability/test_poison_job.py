"""A job that kills its worker every time (here through the worker's crash test hook) fails
after `max_attempts` claims with a clear error, and the jobs behind it still run."""

from __future__ import annotations

import time

import pytest

from tests.reliability.servers import running_service
from tests.sample_data import csv_bytes, mixed_classification

pytestmark = pytest.mark.reliability
KEY = "ty_rel_" + "p" * 24
MAX_ATTEMPTS = 3


def test_a_job_that_kills_every_worker_fails_after_max_attempts_and_the_queue_drains(
    tmp_path,
) -> None:
    deaths: list[int] = []
    with (
        running_service(
            tmp_path, KEY, lease_seconds="3", max_attempts=str(MAX_ATTEMPTS)
        ) as service,
        service.client() as client,
    ):
        # Only the workers crash on the poison dataset; the API runs on the plain settings.
        worker_env = {**service.env, "TRAINYARD_TEST_CRASH_DATASET_NAME": "poison"}
        workers = [service.worker(f"worker{i}", env=worker_env) for i in (1, 2)]

        def supervise() -> None:
            """Two workers, each restarted when it dies, as systemd or Kubernetes would."""
            for i, proc in enumerate(workers):
                if proc.poll() is not None:
                    deaths.append(proc.returncode)
                    workers[i] = service.worker(f"worker{len(deaths) + 2}", env=worker_env)

        # Different rows: uploads are deduplicated by content.
        poison_rows = csv_bytes(mixed_classification(n=200, seed=0))
        poison = client.upload_dataset(poison_rows, "p.csv", name="poison")
        healthy_rows = csv_bytes(mixed_classification(n=200, seed=1))
        healthy = client.upload_dataset(healthy_rows, "h.csv", name="healthy")
        spec = {"task": "classification", "target": "label", "training": {"epochs": 2}}
        poison_job = client.create_job(poison["id"], spec)
        normal_job = client.create_job(healthy["id"], spec)
        deadline = time.monotonic() + 150
        while client.get_job(poison_job["id"])["status"] in ("queued", "running"):
            assert time.monotonic() < deadline, "the poison job never gave up"
            supervise()
            time.sleep(0.1)
        failed = client.get_job(poison_job["id"])
        normal = client.wait_for_job(normal_job["id"], timeout=60)
        after = client.wait_for_job(client.create_job(healthy["id"], spec)["id"], timeout=60)
    assert failed["status"] == "failed"
    assert failed["attempts"] == MAX_ATTEMPTS
    assert failed["error"]["code"] == "worker_lost"
    assert f"gave up after {MAX_ATTEMPTS} attempts" in failed["error"]["message"]
    # Each attempt killed its worker: the hook exits with 137, as an OOM kill does.
    assert deaths == [137] * MAX_ATTEMPTS
    assert normal["status"] == "succeeded", normal["error"]
    assert after["status"] == "succeeded", after["error"]
