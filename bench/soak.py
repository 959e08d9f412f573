"""Soak: 8 clients for N minutes against the API and 2 workers, mixing what users do.

Each client loops over a weighted mix of uploads (fresh bytes and repeats), job submissions
(small, 2-4 epochs), status polls, cancels and predicts on a trained model. Every response is
counted; a 5xx is an error. After the clients stop, every submitted job must reach an end
(succeeded, failed or cancelled) within the drain time: one that does not, or that vanished,
is lost. The last line is JSON.

    .venv/bin/python -m bench.soak [--minutes 10] [--clients 8] [--postgres]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
import numpy as np

from tests.e2e.fleet import (
    free_port,
    postgres_redis_env,
    service_env,
    stop,
    trainyard,
    wait_until_ready,
)
from tests.sample_data import csv_bytes, mixed_classification

KEY = "ty_bench_" + "s" * 24
SPEC = {"task": "classification", "target": "label", "training": {"epochs": 3}}
FINISHED = {"succeeded", "failed", "cancelled"}
MIX = {"upload": 1, "submit": 2, "poll": 6, "cancel": 1, "predict": 10}
# A client keeps at most this many jobs unfinished, as a user waiting on results would; an
# unbounded stream of submissions would only measure the queue's length.
OUTSTANDING_JOBS = 2
DRAIN_SECONDS = 300


class Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests = 0
        self.errors_5xx: list[str] = []
        self.jobs: list[str] = []
        self.predict_ms: list[float] = []

    def count(self, what: str, response: httpx.Response) -> httpx.Response:
        with self.lock:
            self.requests += 1
            if response.status_code >= 500:
                self.errors_5xx.append(f"{what}: {response.status_code} {response.text[:200]}")
        return response


def client_loop(
    base_url: str, until: float, tally: Tally, dataset_id: str, model_id: str, seed: int
) -> None:
    rng = random.Random(seed)
    headers = {"Authorization": f"Bearer {KEY}"}
    mine: list[str] = []
    unfinished: set[str] = set()
    rows = mixed_classification(n=40, seed=seed)
    instances = [
        {"x1": a, "x2": b, "colour": c}
        for a, b, c in zip(rows["x1"], rows["x2"], rows["colour"], strict=True)
    ]
    with httpx.Client(base_url=base_url, headers=headers, timeout=120) as http:
        while time.monotonic() < until:
            action = rng.choices(list(MIX), weights=list(MIX.values()))[0]
            if action == "upload":
                # Half fresh bytes, half a repeat (the dedupe path).
                table = mixed_classification(n=120, seed=rng.randrange(4) * 1000 + seed)
                files = {"file": ("soak.csv", csv_bytes(table), "text/csv")}
                tally.count("upload", http.post("/v1/datasets", files=files))
            elif action == "submit" and len(unfinished) < OUTSTANDING_JOBS:
                body = {"dataset_id": dataset_id, "spec": {**SPEC, "seed": rng.randrange(100)}}
                response = tally.count("submit", http.post("/v1/jobs", json=body))
                if response.status_code == 202:
                    mine.append(response.json()["id"])
                    unfinished.add(response.json()["id"])
                    with tally.lock:
                        tally.jobs.append(response.json()["id"])
            elif action == "poll" and mine:
                job_id = rng.choice(sorted(unfinished) or mine)
                response = tally.count("poll", http.get(f"/v1/jobs/{job_id}"))
                if response.status_code == 200 and response.json()["status"] in FINISHED:
                    unfinished.discard(job_id)
            elif action == "cancel" and unfinished:
                job_id = rng.choice(sorted(unfinished))
                tally.count("cancel", http.post(f"/v1/jobs/{job_id}/cancel"))
            elif action == "predict":
                body = {"instances": [rng.choice(instances)]}
                started = time.perf_counter()
                response = tally.count(
                    "predict", http.post(f"/v1/models/{model_id}/predict", json=body)
                )
                if response.status_code == 200:
                    with tally.lock:
                        tally.predict_ms.append((time.perf_counter() - started) * 1000)


def trained_model(base_url: str) -> tuple[str, str]:
    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=120) as http:
        files = {"file": ("seed.csv", csv_bytes(mixed_classification(n=240)), "text/csv")}
        dataset_id = http.post("/v1/datasets", files=files).json()["id"]
        job = http.post("/v1/jobs", json={"dataset_id": dataset_id, "spec": SPEC}).json()
        deadline = time.monotonic() + 300
        while job["status"] not in FINISHED and time.monotonic() < deadline:
            time.sleep(0.2)
            job = http.get(f"/v1/jobs/{job['id']}").json()
        if job["status"] != "succeeded":
            raise RuntimeError(f"the seed job did not succeed: {job}")
        return dataset_id, job["model_id"]


def lost_jobs(base_url: str, job_ids: list[str]) -> list[str]:
    """Jobs that did not reach an end within the drain time, or that vanished."""
    headers = {"Authorization": f"Bearer {KEY}"}
    waiting = set(job_ids)
    lost: list[str] = []
    deadline = time.monotonic() + DRAIN_SECONDS
    with httpx.Client(base_url=base_url, headers=headers, timeout=60) as http:
        while waiting and time.monotonic() < deadline:
            for job_id in list(waiting):
                response = http.get(f"/v1/jobs/{job_id}")
                if response.status_code == 404:
                    lost.append(job_id)
                    waiting.discard(job_id)
                elif response.json()["status"] in FINISHED:
                    waiting.discard(job_id)
            if waiting:
                time.sleep(1)
    return lost + sorted(waiting)


def tally_has_errors(scope: dict) -> bool:
    tally = scope.get("tally")
    return bool(tally and tally.errors_5xx)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL + Redis")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch_dir, ExitStack() as stack:
        scratch = Path(scratch_dir)
        if args.postgres:
            env = stack.enter_context(postgres_redis_env(scratch / "data", KEY))
        else:
            env = service_env(scratch / "data", free_port(), KEY)
        base_url = f"http://127.0.0.1:{env['TRAINYARD_PORT']}"
        procs = [trainyard("api", env=env, log=scratch / "api.log")]
        try:
            wait_until_ready(base_url, procs)
            procs += [trainyard("worker", env=env, log=scratch / f"worker{i}.log") for i in (1, 2)]
            dataset_id, model_id = trained_model(base_url)
            tally = Tally()
            until = time.monotonic() + args.minutes * 60
            clients = [
                threading.Thread(
                    target=client_loop,
                    args=(base_url, until, tally, dataset_id, model_id, seed),
                )
                for seed in range(args.clients)
            ]
            for thread in clients:
                thread.start()
            for thread in clients:
                thread.join()
            lost = lost_jobs(base_url, tally.jobs)
        finally:
            for proc in procs:
                stop(proc)
            if tally_has_errors(locals()):
                # The server's side of a 5xx: the last traceback in the API's log.
                log = (scratch / "api.log").read_text(errors="replace")
                print(log[log.rfind("Traceback") :][-3000:])
    for line in tally.errors_5xx[:10]:
        print("5xx:", line)
    if lost:
        print("lost:", ", ".join(lost[:20]))
    result = {
        "minutes": args.minutes,
        "clients": args.clients,
        "requests": tally.requests,
        "errors_5xx": len(tally.errors_5xx),
        "jobs_submitted": len(tally.jobs),
        "jobs_lost": len(lost),
        "predict_p99_ms": round(float(np.percentile(tally.predict_ms, 99)), 1)
        if tally.predict_ms
        else None,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
