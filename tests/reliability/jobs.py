"""The job the fault tests break things under: slow on purpose, and a way to wait for it."""

from __future__ import annotations

import time

from client import Client
from tests.sample_data import csv_bytes, mixed_classification


def submit_slow_job(client: Client, epochs: int, rows: int = 400) -> tuple[dict, dict]:
    """(dataset, job): a job that steps one row at a time (batch_size 1, no early stopping),
    so there is time to kill, restart or cancel something in the middle of it."""
    dataset = client.upload_dataset(csv_bytes(mixed_classification(n=rows)), "m.csv")
    spec = {
        "task": "classification",
        "target": "label",
        "training": {"epochs": epochs, "batch_size": 1, "early_stopping": None},
    }
    return dataset, client.create_job(dataset["id"], spec)


def wait_for_epoch(client: Client, job_id: str, epoch: int, timeout: float) -> dict:
    """The job once it has finished `epoch` epochs; with 0, once it has started."""
    deadline = time.monotonic() + timeout
    while True:
        job = client.get_job(job_id)
        progress = job["progress"]
        if progress is not None and (progress.get("epoch") or 0) >= epoch:
            return job
        assert time.monotonic() < deadline, f"the job never reached epoch {epoch}"
        time.sleep(0.05)
