"""Start the real processes (uvicorn API, Celery worker, or `trainyard run`) for e2e tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from client import Client


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def service_env(data_dir: Path, port: int, key: str, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINYARD_")}
    env.update(
        TRAINYARD_DATA_DIR=str(data_dir),
        TRAINYARD_PORT=str(port),
        TRAINYARD_BOOTSTRAP_KEY=key,
        **{f"TRAINYARD_{name.upper()}": value for name, value in settings.items()},
    )
    return env


def trainyard(*args: str, env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "service.cli", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_until_ready(base_url: str, procs: list[subprocess.Popen], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{proc.args} exited with {proc.returncode} during start-up")
        try:
            if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{base_url} not ready after {timeout} s")


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise


@contextmanager
def api_and_worker(env: dict[str, str], log_dir: Path) -> Iterator[str]:
    """`trainyard api` + `trainyard worker` as separate processes, as in production."""
    base_url = f"http://127.0.0.1:{env['TRAINYARD_PORT']}"
    api = trainyard("api", env=env, log=log_dir / "api.log")
    # The API migrates on start; the worker starts once the schema is there.
    try:
        wait_until_ready(base_url, [api])
        worker = trainyard("worker", env=env, log=log_dir / "worker.log")
        try:
            yield base_url
        finally:
            stop(worker)
    finally:
        stop(api)


@contextmanager
def postgres_redis_env(data_dir: Path, key: str, **settings: str) -> Iterator[dict[str, str]]:
    """Settings for a fleet on a fresh PostgreSQL database and a Redis key prefix of its own."""
    from tests.conftest import REDIS_URL, fresh_postgres_database, redis_key_prefix

    with fresh_postgres_database() as database_url, redis_key_prefix() as prefix:
        yield service_env(
            data_dir,
            free_port(),
            key,
            database_url=database_url,
            broker_url=REDIS_URL,
            broker_key_prefix=prefix,
            **settings,
        )


def run_timed_job(client: Client, dataset_id: str, spec: dict) -> tuple[dict, float, float]:
    """Submit a job and follow it to its end: (final job, seconds to `running`, to the end)."""
    submitted = time.monotonic()
    job = client.create_job(dataset_id, spec)
    to_running: float | None = None
    while (current := client.get_job(job["id"]))["status"] in ("queued", "running"):
        if current["status"] == "running" and to_running is None:
            to_running = time.monotonic() - submitted
        time.sleep(0.02)
    finished = time.monotonic() - submitted
    # A job faster than one poll is never seen running: it started no later than it ended.
    return current, finished if to_running is None else to_running, finished


RANK_MODULE = b"engine.training.distributed_rank"


def rank_pids() -> list[int]:
    """The data-parallel rank processes on this machine (their command line names the rank
    module; the launcher's own does too, with torch.distributed.run before it)."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            arguments = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if RANK_MODULE in arguments and b"torch.distributed.run" not in arguments:
            pids.append(int(cmdline.parent.name))
    return pids
