"""Seconds from `POST /v1/jobs` to `running` and to `succeeded` for the breast_cancer job.

Starts the real service twice: the embedded default (`trainyard run`: SQLite, folder broker)
and `trainyard api` + `trainyard worker` on PostgreSQL + Redis. One warm-up job first, so the
figures are for a worker that is already up. The last line is JSON.

    .venv/bin/python -m bench.job_latency [--jobs 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from client import Client
from tests.e2e.fleet import (
    api_and_worker,
    free_port,
    postgres_redis_env,
    run_timed_job,
    service_env,
    stop,
    trainyard,
    wait_until_ready,
)
from tests.sample_data import breast_cancer_columns, csv_bytes

KEY = "ty_bench_" + "b" * 24
SPEC = {"task": "classification", "target": "label"}


def time_jobs(base_url: str, jobs: int) -> dict[str, float]:
    to_running, to_succeeded = [], []
    with Client(base_url, KEY) as client:
        dataset = client.upload_dataset(csv_bytes(breast_cancer_columns()), "breast_cancer.csv")
        client.wait_for_job(client.create_job(dataset["id"], SPEC)["id"])  # warm-up
        for _ in range(jobs):
            job, running, finished = run_timed_job(client, dataset["id"], SPEC)
            assert job["status"] == "succeeded", job
            to_running.append(running)
            to_succeeded.append(finished)
    return {
        "to_running_s": round(statistics.median(to_running), 3),
        "to_succeeded_s": round(statistics.median(to_succeeded), 3),
    }


def embedded(jobs: int, scratch: Path) -> dict[str, float]:
    port = free_port()
    run = trainyard(
        "run", env=service_env(scratch / "embedded", port, KEY), log=scratch / "run.log"
    )
    try:
        wait_until_ready(f"http://127.0.0.1:{port}", [run])
        return time_jobs(f"http://127.0.0.1:{port}", jobs)
    finally:
        stop(run)


def postgres_redis(jobs: int, scratch: Path) -> dict[str, float]:
    with postgres_redis_env(scratch / "fleet", KEY) as env, api_and_worker(env, scratch) as url:
        return time_jobs(url, jobs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        result = {
            "embedded": embedded(args.jobs, Path(scratch)),
            "postgres_redis": postgres_redis(args.jobs, Path(scratch)),
            "jobs": args.jobs,
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
