"""Prometheus metrics: every metric Trainyard exports is defined here, with the collectors that
read counts at scrape time and the exposition `GET /metrics` serves.

Processes. `trainyard api`, `trainyard worker` and `trainyard run` point prometheus-client's
multiprocess mode at one folder per machine (`TRAINYARD_METRICS_DIR`, by default `metrics/`
in the data dir) before anything imports prometheus-client: each process writes its samples
to files of its own there, and a scrape of any API process on the machine adds up every
process's files. So the API's `/metrics` also shows the workers that share its machine.
Each process prunes the files of processes that are gone when it starts (a restarted
process's counters start again from 0, which `rate()` reads as a reset), and a process's
live gauges (GPU memory) leave with it (`mark_process_dead`). A process started otherwise
(a bare `celery -A workers.app`, the tests' in-process app) keeps its metrics in memory and
shows only its own.

Labels never carry project data: routes are templates (`/v1/jobs/{job_id}`), workers are
`host:pid`, and the job counts are totals over every project.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
# prometheus-client picks in-memory or file-backed values when it is imported: this module
# imports it, so the folder this process writes to (None: in memory) is known from here on.
MULTIPROCESS_DIR: str | None = os.environ.get(MULTIPROCESS_ENV) or None
CONTENT_TYPE = CONTENT_TYPE_LATEST
# The route label of a request no route matched (any path: a label per path is unbounded).
UNMATCHED = "unmatched"
# Where a layer that answers before the router (the predict lane) puts its route template.
ROUTE_TEMPLATE = "trainyard.route_template"

# HTTP, per API process.
HTTP_REQUESTS = Counter(
    "trainyard_http_requests",
    "HTTP requests answered, by method, route template and status code.",
    ["method", "route", "status"],
)
HTTP_REQUEST_DURATION = Histogram(
    "trainyard_http_request_duration_seconds",
    "Time to answer an HTTP request, to the last byte (an event stream: until it closes).",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)

# Predict micro-batching (service/models/batching.py), per API process.
PREDICT_BATCH_ROWS = Histogram(
    "trainyard_predict_batch_rows",
    "Rows in one predict forward pass (concurrent requests for a model share one).",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384),
)
PREDICT_BATCH_REQUESTS = Histogram(
    "trainyard_predict_batch_requests",
    "Requests sharing one predict forward pass.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
PREDICT_QUEUE_WAIT = Histogram(
    "trainyard_predict_queue_wait_seconds",
    "Time a predict request waited for its forward pass to begin.",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
)

# Training and leases, per worker (`host:pid`).
TRAINING_SAMPLES_PER_SECOND = Gauge(
    "trainyard_training_samples_per_second",
    "Training throughput of the latest epoch the worker trained.",
    ["worker"],
    multiprocess_mode="mostrecent",
)
TRAINING_SAMPLES = Counter(
    "trainyard_training_samples",
    "Training samples the worker has passed through its models (rate() is its throughput).",
    ["worker"],
)
TRAINING_EPOCHS = Counter(
    "trainyard_training_epochs", "Training epochs the worker has finished.", ["worker"]
)
WORKER_HEARTBEAT = Gauge(
    "trainyard_worker_heartbeat_timestamp_seconds",
    "When the worker last took or renewed a lease on its work (Unix time).",
    ["worker"],
    multiprocess_mode="mostrecent",
)
# GPU memory of a worker whose training initialised CUDA; none on CPU-only workers. Live
# gauges: they leave with their process.
GPU_MEMORY_ALLOCATED = Gauge(
    "trainyard_gpu_memory_allocated_bytes",
    "GPU memory held by tensors in the worker (torch.cuda.memory_allocated).",
    ["worker", "device"],
    multiprocess_mode="livemostrecent",
)
GPU_MEMORY_RESERVED = Gauge(
    "trainyard_gpu_memory_reserved_bytes",
    "GPU memory reserved by the worker's caching allocator (torch.cuda.memory_reserved).",
    ["worker", "device"],
    multiprocess_mode="livemostrecent",
)
GPU_MEMORY_PEAK = Gauge(
    "trainyard_gpu_memory_peak_allocated_bytes",
    "Peak GPU memory held by tensors in the worker (torch.cuda.max_memory_allocated).",
    ["worker", "device"],
    multiprocess_mode="livemostrecent",
)
GPU_UTILIZATION = Gauge(
    "trainyard_gpu_utilization_ratio",
    "GPU utilisation over the driver's last sample period, 0-1 (torch.cuda.utilization; "
    "needs nvidia-ml-py).",
    ["worker", "device"],
    multiprocess_mode="livemostrecent",
)


# Recording: called where the thing happens; each is a few microseconds.
def record_predict_batch(rows: int, requests: int, waits: Iterable[float]) -> None:
    PREDICT_BATCH_ROWS.observe(rows)
    PREDICT_BATCH_REQUESTS.observe(requests)
    for wait in waits:
        PREDICT_QUEUE_WAIT.observe(wait)


def record_epoch(worker: str, samples_per_second: float, seconds: float) -> None:
    TRAINING_SAMPLES_PER_SECOND.labels(worker).set(samples_per_second)
    TRAINING_SAMPLES.labels(worker).inc(max(0.0, samples_per_second * seconds))
    TRAINING_EPOCHS.labels(worker).inc()


def record_heartbeat(worker: str) -> None:
    WORKER_HEARTBEAT.labels(worker).set(time.time())


def record_gpu(worker: str) -> None:
    """The worker's GPU memory (and utilisation where NVML is there), if this process has
    initialised CUDA already: it never does so itself (a Celery parent must not), so a
    CPU-only worker, or one that trained on CPU only, reports nothing."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_initialized():
        return
    for index in range(torch.cuda.device_count()):
        device = f"cuda:{index}"
        GPU_MEMORY_ALLOCATED.labels(worker, device).set(torch.cuda.memory_allocated(index))
        GPU_MEMORY_RESERVED.labels(worker, device).set(torch.cuda.memory_reserved(index))
        GPU_MEMORY_PEAK.labels(worker, device).set(torch.cuda.max_memory_allocated(index))
        try:
            utilization = torch.cuda.utilization(index) / 100
        except Exception:  # no nvidia-ml-py, or NVML not answering: no sample, not a 0
            continue
        GPU_UTILIZATION.labels(worker, device).set(utilization)


# HTTP requests: an ASGI layer outside everything else, the predict lane included.
def route_template(scope: Scope) -> str:
    """The route a request matched, as its template: bounded, and free of ids."""
    if template := scope.get(ROUTE_TEMPLATE):
        return template
    if (route := scope.get("route")) is not None:
        return route.path
    if "app_root_path" in scope:  # a Mount (the dashboard's files): the mount's own path
        return scope["root_path"] or UNMATCHED
    return UNMATCHED


class HttpMetrics:
    """Counts and times every HTTP request by method, route template and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # an exception that escapes every handler ends as a 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            method, route = scope["method"], route_template(scope)
            HTTP_REQUESTS.labels(method, route, str(status)).inc()
            HTTP_REQUEST_DURATION.labels(method, route).observe(time.perf_counter() - started)


# Read at scrape time, by the API process serving `/metrics`.
class StatusCounts:
    """Rows of a kind of leased work per status, counted in the database at scrape time.
    The same totals from every API replica: aggregate them with max(), not sum()."""

    def __init__(self, name: str, documentation: str, counts: Callable[[], dict[str, int]]):
        self.name = name
        self.documentation = documentation
        self.counts = counts

    def collect(self) -> Iterator[Metric]:
        try:
            counts = self.counts()
        except Exception:  # a database that does not answer: no sample, not a failed scrape
            log.warning("%s: counting failed", self.name, exc_info=True)
            return
        family = GaugeMetricFamily(self.name, self.documentation, labels=["state"])
        for state, count in sorted(counts.items()):
            family.add_metric([state], count)
        yield family


class QueueDepth:
    """Messages waiting per broker queue at scrape time (a Redis list's length; the embedded
    broker's message files). A queue the broker cannot count has no sample."""

    def __init__(self, pending: Callable[[str], int | None], queues: Iterable[str]) -> None:
        self.pending = pending
        self.queues = sorted(set(queues))

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "trainyard_queue_depth", "Messages waiting in a broker queue.", labels=["queue"]
        )
        for queue in self.queues:
            if (depth := self.pending(queue)) is not None:
                family.add_metric([queue], depth)
        yield family


class ProcessMetrics:
    """What this process's registry holds: every process's files in multiprocess mode, else
    this process's own metrics."""

    def collect(self) -> Iterator[Metric]:
        if MULTIPROCESS_DIR is None:
            yield from REGISTRY.collect()
            return
        yield from MultiProcessCollector(None, path=MULTIPROCESS_DIR).collect()


def exposition_registry(*collectors: Any) -> CollectorRegistry:
    """A registry of the process metrics and `collectors` (each app has its own: nothing is
    registered globally, so several apps can live in one process)."""
    registry = CollectorRegistry(auto_describe=False)
    for collector in (ProcessMetrics(), *collectors):
        registry.register(collector)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The text exposition format; it may query the database and the broker, so call it off
    the event loop."""
    return generate_latest(registry)


# Processes.
def prepare_metrics_dir(path: Path) -> None:
    """Create the folder, and delete the files of processes that are gone (an earlier run's,
    or a crashed one's). Files are `<kind>_<pid>.db`; the folder is for one machine."""
    path.mkdir(parents=True, exist_ok=True)
    for file in path.glob("*.db"):
        pid = file.stem.rpartition("_")[2]
        if pid.isdigit() and not process_alive(int(pid)):
            with contextlib.suppress(FileNotFoundError):
                file.unlink()


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def process_exited(pid: int, path: Path | None = None) -> None:
    """A process that wrote to the folder has ended: its live gauges leave with it."""
    folder = path or (Path(MULTIPROCESS_DIR) if MULTIPROCESS_DIR else None)
    if folder is not None and folder.is_dir():
        mark_process_dead(pid, str(folder))


def start_worker_exporter(host: str, port: int) -> None:
    """A worker's own `/metrics` on `host:port` (a thread), for a fleet's workers on machines
    without an API process: what its machine's folder holds, or its own metrics."""
    start_http_server(port, addr=host, registry=exposition_registry())
