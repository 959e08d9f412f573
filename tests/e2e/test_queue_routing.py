"""Queue routing that cannot misfire, on this CPU-only machine through `trainyard run` (a real
API and a real worker): the worker advertises what it has and leaves the CUDA queue alone, a
job asking for CUDA waits and says why instead of failing on a CPU worker, CPU work still
runs, and a worker told to listen on the CUDA queue here refuses to start."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import pytest

from client import Client
from engine.cuda_inventory import cuda_inventory
from tests.e2e.fleet import free_port, service_env, stop, trainyard, wait_until_ready
from tests.sample_data import csv_bytes, mixed_classification

pytestmark = pytest.mark.e2e
KEY = "ty_route_" + "r" * 24
ADMIN_KEY = "admin-route-" + "a" * 24
SPEC = {"task": "classification", "target": "label", "training": {"epochs": 2}}

needs_no_cuda = pytest.mark.skipif(
    cuda_inventory().devices > 0, reason="asserts what a machine without CUDA does"
)


def live_workers(base_url: str, timeout: float = 30) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = httpx.get(
            f"{base_url}/v1/workers", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
        )
        assert response.status_code == 200, response.text
        if response.json()["items"]:
            return response.json()["items"]
        time.sleep(0.2)
    raise AssertionError("no worker advertised itself")


@needs_no_cuda
def test_a_cuda_job_waits_with_its_reason_while_cpu_work_runs(tmp_path) -> None:
    port = free_port()
    env = service_env(tmp_path / "data", port, KEY, admin_key=ADMIN_KEY, lease_seconds="4")
    run = trainyard("run", env=env, log=tmp_path / "run.log")
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(base_url, [run])
        (worker,) = live_workers(base_url)
        assert worker["queues"] == ["cpu"] and worker["cuda_devices"] == 0
        assert httpx.get(f"{base_url}/v1/workers").status_code == 401
        project = httpx.get(f"{base_url}/v1/workers", headers={"Authorization": f"Bearer {KEY}"})
        assert project.status_code == 403

        with Client(base_url, KEY) as client:
            dataset = client.upload_dataset(csv_bytes(mixed_classification(n=80)), "m.csv")
            cuda_job = client.create_job(
                dataset.id, {**SPEC, "training": {"epochs": 2, "device": "cuda"}}
            )
            assert cuda_job.queue == "gpu"
            assert "asks for CUDA" in cuda_job.waiting_reason
            cpu_job = client.wait_for_job(client.create_job(dataset.id, SPEC).id, timeout=120)
            assert cpu_job.status == "succeeded" and cpu_job.waiting_reason is None
            # Well past a lease of the worker's passes: the CUDA job is still queued, untouched.
            time.sleep(5)
            waiting = client.get_job(cuda_job.id)
            assert waiting.status == "queued" and waiting.attempts == 0
            assert "no live worker listens on queue 'gpu'" in waiting.waiting_reason
            listed = {job.id: job for job in client.list_jobs().items}
            assert listed[cuda_job.id].waiting_reason == waiting.waiting_reason
    finally:
        stop(run)


@needs_no_cuda
def test_a_worker_asked_for_the_cuda_queue_without_cuda_refuses_to_start(tmp_path) -> None:
    env = service_env(tmp_path / "data", free_port(), KEY)
    refused = subprocess.run(
        [sys.executable, "-m", "service.cli", "worker", "--queues", "cpu,gpu"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2
    assert "no CUDA device" in refused.stderr
