"""`trainyard`: run the embedded service, the API or a worker; migrate; write the OpenAPI file;
and the user's commands over the HTTP API (service/user_commands.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from service.core.settings import Settings, load_settings

cli = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
console = Console(stderr=True)
OPENAPI_PATH = Path("openapi/openapi.json")
STOP_GRACE_SECONDS = 20


def prepare(settings: Settings) -> str:
    """Create the data folder, migrate the database and make sure an API key exists."""
    from service.auth.service import ensure_bootstrap_key
    from service.core.database import create_db_engine, create_session_factory, transaction
    from service.core.migrate import upgrade_database

    settings.resolved_data_dir.mkdir(parents=True, exist_ok=True)
    upgrade_database(settings.effective_database_url)
    key_file = settings.resolved_data_dir / "api_key"
    secret = settings.bootstrap_key or None
    if secret is None and key_file.exists():
        secret = key_file.read_text().strip() or None
    engine = create_db_engine(settings.effective_database_url)
    with transaction(create_session_factory(engine)) as session:
        secret = ensure_bootstrap_key(session, secret)
    engine.dispose()
    if not settings.bootstrap_key and not key_file.exists():
        key_file.write_text(secret + "\n")
        key_file.chmod(0o600)
        console.print(f"Created the first project's API key, saved in {key_file}")
    return secret


def share_metrics_dir(settings: Settings) -> Path:
    """Point prometheus-client's multiprocess mode at this machine's metrics folder (for this
    process and the ones it starts), so the API's `/metrics` adds up every process's; and
    prune what processes that are gone left there. Before anything imports prometheus-client:
    it reads the folder once, when imported (service/core/metrics.py)."""
    path = settings.resolved_metrics_dir
    # Metrics without labels open their files as the module defining them is imported.
    path.mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    from service.core import metrics

    if str(path) != metrics.MULTIPROCESS_DIR:
        raise RuntimeError("prometheus-client was imported before its folder was set")
    metrics.prepare_metrics_dir(path)
    return path


@cli.command()
def run() -> None:
    """Serve the API and one worker on the embedded default (SQLite, local store, no broker
    server). Ctrl-C stops both."""
    settings = load_settings()
    metrics_dir = share_metrics_dir(settings)
    secret = prepare(settings)
    env = {**os.environ, "TRAINYARD_DATA_DIR": str(settings.resolved_data_dir)}
    children = {
        "api": [sys.executable, "-m", "service.cli", "api", "--no-migrate"],
        "worker": [sys.executable, "-m", "service.cli", "worker"],
    }
    # Own process groups: Ctrl-C reaches this process, which stops the children in order.
    procs = {
        name: subprocess.Popen(argv, env=env, start_new_session=True)
        for name, argv in children.items()
    }
    console.print(f"Trainyard is running at [bold]http://{settings.host}:{settings.port}[/bold]")
    console.print(f"API key: [bold]{secret}[/bold]")
    console.print(f"Data: {settings.resolved_data_dir}   (Ctrl-C to stop)")

    stopping = False

    def request_stop(signum, _frame) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    exit_code = 0
    while not stopping:
        for name, proc in procs.items():
            if proc.poll() is not None:
                console.print(f"[red]{name} exited with code {proc.returncode}; stopping[/red]")
                exit_code, stopping = 1, True
        time.sleep(0.2)
    if not stop_processes(list(procs.values())):
        exit_code = 1
    from service.core.metrics import process_exited

    for proc in procs.values():
        process_exited(proc.pid, metrics_dir)
    raise typer.Exit(exit_code)


def stop_processes(procs: list[subprocess.Popen]) -> bool:
    """SIGTERM, then SIGKILL after a grace period; False if one had to be killed."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    clean = True
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            console.print(f"[red]{proc.args[3]} did not stop in time; killed[/red]")
            proc.kill()
            proc.wait()
            clean = False
    return clean


def tune_for_serving(settings: Settings) -> None:
    """Process-wide settings of an API process, where the event loop and the batchers'
    forward passes share the cores and the GIL."""
    import torch

    torch.set_num_threads(settings.predict_threads or max(1, (os.cpu_count() or 1) - 1))
    # A batcher thread re-takes the GIL after each torch op; under load the loop would hold
    # it for the default 5 ms each time. 1 ms cuts a contended batch's time by a third.
    sys.setswitchinterval(0.001)


@cli.command()
def api(
    migrate: Annotated[bool, typer.Option(help="Run `alembic upgrade head` first.")] = True,
) -> None:
    """Serve the HTTP API (one process)."""
    import gc

    import uvicorn

    settings = load_settings()
    share_metrics_dir(settings)
    from service.app import create_app

    if migrate:
        prepare(settings)
    app = create_app(settings)
    tune_for_serving(settings)
    # What exists now (modules, the app) lives as long as the process: keep it out of the
    # collector's scans, so a full collection under predict load takes microseconds, not
    # tens of milliseconds of every waiting request's time.
    gc.freeze()
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level="info",
        access_log=settings.access_log,
        timeout_graceful_shutdown=10,
    )
    from service.core.metrics import process_exited

    process_exited(os.getpid())


@cli.command()
def worker(
    queues: Annotated[str | None, typer.Option(help="Comma-separated queues, e.g. gpu,cpu")] = None,
) -> None:
    """Run a Celery worker that trains jobs from the given queues, one at a time. The `gpu`
    queue (jobs that ask for CUDA) is left out on a machine without CUDA, and gpu2..gpuN added
    on one with N devices (jobs that need that many); a queue the machine cannot serve, named in
    `--queues`, is an error."""
    from engine.cuda_inventory import cuda_inventory
    from service.fleet.service import NoCuda, queues_to_listen

    settings = load_settings()
    # The worker is this very process after execv: it writes to the folder set here.
    share_metrics_dir(settings)
    try:
        listen = queues_to_listen(
            (queues or settings.worker_queues).split(","), cuda_inventory(), queues is not None
        )
    except NoCuda as error:
        typer.echo(f"trainyard worker: {error}", err=True)
        raise typer.Exit(2) from None
    if not listen:
        typer.echo("trainyard worker: no queue to listen on", err=True)
        raise typer.Exit(2)
    argv = [
        sys.executable, "-m", "celery", "-A", "workers.app:celery_app", "worker",
        "--pool=solo", "--loglevel=INFO",
        "--queues", ",".join(listen),
        "--hostname", f"trainyard-{os.getpid()}@%h",
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip
    os.execv(sys.executable, argv)


@cli.command()
def migrate() -> None:
    """Apply every database migration (`alembic upgrade head`)."""
    from service.core.migrate import upgrade_database

    settings = load_settings()
    settings.resolved_data_dir.mkdir(parents=True, exist_ok=True)
    upgrade_database(settings.effective_database_url)


def openapi_document() -> dict:
    import tempfile

    from service.app import create_app

    with tempfile.TemporaryDirectory() as scratch:
        return create_app(Settings(data_dir=Path(scratch))).openapi()


@cli.command()
def openapi(path: Path = OPENAPI_PATH) -> None:
    """Write the OpenAPI document generated from the app."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n")
    console.print(f"wrote {path}")


def main() -> None:
    from service.user_commands import register

    register(cli)
    cli()


if __name__ == "__main__":
    main()
