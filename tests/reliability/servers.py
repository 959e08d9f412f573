"""Servers the reliability tests own, so they can kill and restart them: a Redis with no
persistence (a restart loses every message), a PostgreSQL cluster in a temporary folder, and
Trainyard itself (`trainyard api` and its workers) pointed at either or at its embedded default.
The machine's shared Redis and PostgreSQL are never touched."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from glob import glob
from pathlib import Path

import psycopg
import redis

from client import Client
from tests.e2e.fleet import free_port, service_env, stop, trainyard, wait_until_ready


@dataclass
class RedisServer:
    port: int
    log: Path
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
                + ["--save", "", "--appendonly", "no"],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(port=self.port, socket_timeout=1).ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port)


@contextmanager
def redis_server(log: Path) -> Iterator[RedisServer]:
    server = RedisServer(free_port(), log)
    server.start()
    try:
        yield server
    finally:
        server.kill()


def _postgres_bin(name: str) -> str:
    found = sorted(glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"PostgreSQL's {name} is not installed")
    return path


def _as_postgres_user(argv: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root: run the cluster as the `postgres` system user.
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


@dataclass
class PostgresCluster:
    folder: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/trainyard"

    def pg_ctl(self, *args: str) -> None:
        # Output to a file, never a pipe: the server pg_ctl starts would inherit it.
        with (self.folder / "pg_ctl.log").open("ab") as out:
            subprocess.run(
                _as_postgres_user(
                    [_postgres_bin("pg_ctl"), "-D", str(self.folder / "data"), *args]
                ),
                check=True,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=60,
            )

    def restart(self) -> None:
        """Fast shutdown (every connection dropped, transactions rolled back), then start."""
        self.pg_ctl("restart", "-m", "fast", "-w", "-l", str(self.folder / "postgres.log"))

    def running_without_live_lease(self) -> list[str]:
        with psycopg.connect(self.url.replace("+psycopg", "")) as connection:
            rows = connection.execute(
                "SELECT id FROM jobs WHERE status = 'running' "
                "AND (lease_expires_at IS NULL OR lease_expires_at < now())"
            ).fetchall()
        return [row[0] for row in rows]


@contextmanager
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A fresh cluster on a spare port (trust auth), with an empty `trainyard` database."""
    # Not under pytest's tmp_path: its folders are private to root, out of the postgres
    # user's reach.
    folder = Path(tempfile.mkdtemp(prefix="trainyard-pg-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    cluster = PostgresCluster(folder, free_port())
    data = str(folder / "data")
    subprocess.run(
        _as_postgres_user(
            [_postgres_bin("initdb"), "-D", data, "-A", "trust", "-U", "postgres", "--no-sync"]
        ),
        check=True,
        capture_output=True,
        timeout=120,
    )
    options = (
        f"-p {cluster.port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c full_page_writes=off"
    )
    cluster.pg_ctl("start", "-w", "-o", options, "-l", str(folder / "postgres.log"))
    try:
        with psycopg.connect(
            f"postgresql://postgres@127.0.0.1:{cluster.port}/postgres", autocommit=True
        ) as connection:
            connection.execute("CREATE DATABASE trainyard")
        yield cluster
    finally:
        try:
            cluster.pg_ctl("stop", "-m", "immediate", "-w")
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def sqlite_job_column(data_dir: Path, job_id: str, column: str) -> object:
    """One column of a job, read straight from the embedded database (the API hides it)."""
    with sqlite3.connect(data_dir / "trainyard.sqlite") as connection:
        row = connection.execute(f"SELECT {column} FROM jobs WHERE id = ?", (job_id,)).fetchone()
    return row[0] if row else None


@dataclass
class Service:
    """A running `trainyard api`; workers are started beside it through `worker`."""

    env: dict[str, str]
    log_dir: Path
    key: str
    stops: ExitStack

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.env['TRAINYARD_PORT']}"

    @property
    def data_dir(self) -> Path:
        return Path(self.env["TRAINYARD_DATA_DIR"])

    def client(self) -> Client:
        return Client(self.base_url, self.key)

    def worker(self, name: str = "worker", env: dict[str, str] | None = None) -> subprocess.Popen:
        """A `trainyard worker` logging to `<name>.log` (the tests read it), on the service's
        settings unless `env` is given. The test may kill or stop it itself; if it still runs
        when the service ends, it is stopped then."""
        log = self.log_dir / f"{name}.log"
        proc = trainyard("worker", env=self.env if env is None else env, log=log)
        self.stops.callback(stop, proc)
        return proc


@contextmanager
def running_service(log_dir: Path, key: str, **settings: str) -> Iterator[Service]:
    """`trainyard api` on a spare port with its data in `log_dir / "data"`, ready to serve, and
    no worker yet: the API migrates the database on start, so a worker started after this
    finds the schema in place. `settings` go to service_env (a `broker_url` or `database_url`
    points it at one of the servers above).

    On the way out the workers are stopped, last started first, then the API: each one even
    when stopping another failed, so no process outlives a failed test."""
    env = service_env(log_dir / "data", free_port(), key, **settings)
    with ExitStack() as stops:
        api = trainyard("api", env=env, log=log_dir / "api.log")
        stops.callback(stop, api)
        service = Service(env, log_dir, key, stops)
        wait_until_ready(service.base_url, [api])
        yield service
