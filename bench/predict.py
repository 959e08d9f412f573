"""Predict under load: the real service (one API process) against a naive FastAPI peer.

Trains two models through Trainyard: `small`, the MLP 50-256-256-10 (overhead-bound), and
`heavy`, an MLP 50-2048-2048-2048-10 (forward-bound). For each, drives the service and the
peer (bench/predict_peer.py, as `def` and as `async def`; the faster is the peer) with wrk:
single-row requests at concurrency 1 (p50, p99: medians of five 2 s runs, the three servers
taking turns) and at concurrency 32 for 15 s (requests/s, p50, p99, errors), and one request of
10,000 rows (latency, best of 3). Then `explain` on the small model: p50 and p95 of
EXPLAIN_REQUESTS one-row requests, one at a time (integrated gradients, the default 32 steps).
The last line is JSON.

    .venv/bin/python -m bench.predict [--seconds 15]     (needs `wrk`: apt-get install wrk)
    .venv/bin/python -m bench.predict --explain-only     (the small model's explain alone)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from sklearn.datasets import make_classification

from client import Client
from tests.e2e.fleet import free_port, service_env, stop, trainyard, wait_until_ready
from tests.sample_data import csv_bytes

KEY = "ty_bench_" + "p" * 24
# Single-row latency: each server in turn, this many runs of this many seconds.
C1_ROUNDS = 5
C1_SECONDS = 2
FEATURES = 50
EXPLAIN_REQUESTS = 200
MODELS = {"small": [256, 256], "heavy": [2048, 2048, 2048]}
LUA = """wrk.method = "POST"
wrk.body = {body}
wrk.headers["Content-Type"] = "application/json"
{auth}
"""


def training_data(rows: int = 2000) -> tuple[dict[str, list], list[dict[str, float]]]:
    x, y = make_classification(rows, FEATURES, n_informative=20, n_classes=10, random_state=0)
    columns = {f"f{i}": x[:, i].round(5).tolist() for i in range(FEATURES)}
    instances = [{f"f{i}": float(v) for i, v in enumerate(row)} for row in x.round(5)]
    return {**columns, "label": y.tolist()}, instances


def run_wrk(url: str, body: str, connections: int, seconds: int, key: str | None, scratch: Path):
    script = scratch / "post.lua"
    auth = f'wrk.headers["Authorization"] = "Bearer {key}"' if key else ""
    # The body as a Lua string literal: JSON's string escapes are valid Lua.
    script.write_text(LUA.format(body=json.dumps(json.dumps(body)), auth=auth))
    threads = min(2, connections)
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return parse_wrk(out)


def parse_wrk(out: str) -> dict[str, float]:
    def ms(text: str) -> float:
        value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
        return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    percentiles = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if socket:
        errors += sum(int(n) for n in socket.groups())
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": ms(percentiles["50"]),
        "p99_ms": ms(percentiles["99"]),
        "errors": errors,
    }


def single_row(instances: list[dict]) -> dict:
    return {"instances": [instances[0]]}


def auth_headers(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


def rows_ms(url: str, body: dict, headers: dict) -> float:
    best = float("inf")
    with httpx.Client(timeout=300) as http:
        for _ in range(3):
            started = time.perf_counter()
            response = http.post(url, json=body, headers=headers)
            response.raise_for_status()
            best = min(best, (time.perf_counter() - started) * 1000)
    return best


def warm(url: str, key: str | None, instances: list[dict]) -> None:
    # The first request loads the model.
    httpx.post(
        url, json=single_row(instances), headers=auth_headers(key), timeout=60
    ).raise_for_status()


def single_row_latency(
    servers: dict[str, tuple[str, str | None]], instances: list[dict], scratch: Path
) -> dict[str, dict[str, float]]:
    """c1 p50 and p99 of each server, as medians of C1_ROUNDS short runs taken in turn: how
    fast this machine runs drifts over seconds (other tenants), and a c1 ratio between two
    runs taken a minute apart measured that drift as much as the servers."""
    one = single_row(instances)
    runs: dict[str, list[dict]] = {name: [] for name in servers}
    for _ in range(C1_ROUNDS):
        for name, (url, key) in servers.items():
            runs[name].append(run_wrk(url, one, 1, C1_SECONDS, key, scratch))
    return {
        name: {
            "c1_p50_ms": statistics.median(r["p50_ms"] for r in results),
            "c1_p99_ms": statistics.median(r["p99_ms"] for r in results),
            "errors": sum(r["errors"] for r in results),
        }
        for name, results in runs.items()
    }


def under_load(url: str, key: str | None, instances: list[dict], seconds: int, scratch: Path):
    c32 = run_wrk(url, single_row(instances), 32, seconds, key, scratch)
    big = {"instances": (instances * (10_000 // len(instances) + 1))[:10_000]}
    return {
        "c32_rps": c32["rps"],
        "c32_p50_ms": c32["p50_ms"],
        "c32_p99_ms": c32["p99_ms"],
        "rows10k_ms": round(rows_ms(url, big, auth_headers(key)), 1),
        "errors": c32["errors"],
    }


def explain_latency(base_url: str, model_id: str, instances: list[dict]) -> dict[str, float]:
    """p50 and p95 of one-row explain requests sent one after another, after a warm-up."""
    url = f"{base_url}/v1/models/{model_id}/explain"
    body, headers = single_row(instances), auth_headers(KEY)
    timings = []
    with httpx.Client(timeout=60) as http:
        for i in range(EXPLAIN_REQUESTS + 10):
            started = time.perf_counter()
            http.post(url, json=body, headers=headers).raise_for_status()
            if i >= 10:
                timings.append((time.perf_counter() - started) * 1000)
    cuts = statistics.quantiles(timings, n=100)
    return {
        "explain_p50_ms": round(statistics.median(timings), 3),
        "explain_p95_ms": round(cuts[94], 3),
        "explain_requests": len(timings),
    }


def peer(model_dir: Path, asynchronous: bool, scratch: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {"PEER_MODEL_DIR": str(model_dir), "PEER_ASYNC": "1" if asynchronous else "0"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.predict_peer:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env={**os.environ, **env},
        stdout=(scratch / f"peer-{port}.log").open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(url + "/docs", timeout=1)
            break
        except httpx.HTTPError:
            assert time.monotonic() < deadline and proc.poll() is None, "the peer did not start"
            time.sleep(0.2)
    return proc, url + "/predict"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument(
        "--explain-only", action="store_true", help="train the small model, time explain alone"
    )
    args = parser.parse_args()
    models = {"small": MODELS["small"]} if args.explain_only else MODELS
    if not args.explain_only and shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    table, instances = training_data()
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        port = free_port()
        env = service_env(scratch / "data", port, KEY)
        base_url = f"http://127.0.0.1:{port}"
        worker = trainyard("worker", env=env, log=scratch / "worker.log")
        api = trainyard("api", env=env, log=scratch / "api.log")
        try:
            wait_until_ready(base_url, [api])
            with Client(base_url, KEY, timeout=600) as client:
                dataset = client.upload_dataset(csv_bytes(table), "bench.csv")
                model_ids = {}
                for name, hidden in models.items():
                    spec = {
                        "task": "classification",
                        "target": "label",
                        "model": {"family": "mlp", "hidden": hidden},
                        "training": {"epochs": 1},
                    }
                    job = client.wait_for_job(client.create_job(dataset["id"], spec)["id"])
                    assert job["status"] == "succeeded", job
                    model_ids[name] = job["model_id"]
            stop(worker)
            warm(f"{base_url}/v1/models/{model_ids['small']}/predict", KEY, instances)
            explained = explain_latency(base_url, model_ids["small"], instances)
            print("small explain", json.dumps(explained), flush=True)
            if args.explain_only:
                results["small"] = explained
                model_ids = {}
            for name, model_id in model_ids.items():
                model_dir = scratch / "data" / "store" / "models" / model_id
                servers = {"ours": (f"{base_url}/v1/models/{model_id}/predict", KEY)}
                peers = {}
                try:
                    for variant, asynchronous in (("def", False), ("async", True)):
                        peers[variant], url = peer(model_dir, asynchronous, scratch)
                        servers[variant] = (url, None)
                    for url, key in servers.values():
                        warm(url, key, instances)
                    figures = single_row_latency(servers, instances, scratch)
                    for server, (url, key) in servers.items():
                        loaded = under_load(url, key, instances, args.seconds, scratch)
                        figures[server] = {
                            **figures[server],
                            **loaded,
                            "errors": figures[server]["errors"] + loaded["errors"],
                        }
                finally:
                    for proc in peers.values():
                        stop(proc)
                for server, measured in figures.items():
                    print(name, server, json.dumps(measured), flush=True)
                ours = figures["ours"]
                best = max((figures["def"], figures["async"]), key=lambda p: p["c32_rps"])
                results[name] = {
                    **{k: v for k, v in ours.items() if k != "errors"},
                    **{f"{k}_peer": v for k, v in best.items() if k != "errors"},
                    "errors": ours["errors"] + best["errors"],
                    **(explained if name == "small" else {}),
                }
        finally:
            stop(api)
    for name, figures in results.items():
        print(name, json.dumps(figures))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
