"""The Celery worker: the app, and thin tasks that take ids and delegate to the service."""

from __future__ import annotations

import logging
import os
import socket
from functools import cache

from celery.exceptions import Reject
from celery.signals import worker_ready, worker_shutdown, worker_shutting_down

from engine.cuda_inventory import cuda_inventory
from service.batch_predictions.prediction_run import run_batch_prediction
from service.core import metrics
from service.core.database import create_db_engine, create_session_factory, transaction
from service.core.leased_run import WorkerResources
from service.core.queue import (
    BATCH_PREDICT_TASK,
    EVALUATE_MODEL_TASK,
    JOIN_JOB_TASK,
    TRAIN_JOB_TASK,
    JobQueue,
    create_celery,
)
from service.core.reconciler import Reconciler
from service.core.settings import load_settings
from service.core.store import Store
from service.evaluations.evaluation_run import run_evaluation
from service.fleet import service as fleet
from service.jobs.node_run import run_job_slot
from service.jobs.training_run import run_training_job
from service.studies.trial_observer import advance_stalled_studies, observe_trial
from workers.work_kinds import WORK_KINDS

log = logging.getLogger(__name__)
settings = load_settings()
celery_app = create_celery(settings)


@cache
def worker_resources() -> WorkerResources:
    """Built once per worker process, on its first task."""
    return WorkerResources(
        session_factory=create_session_factory(create_db_engine(settings.effective_database_url)),
        store=Store.from_settings(settings),
        settings=settings,
        worker_id=f"{socket.gethostname()}:{os.getpid()}",
        queue=JobQueue(celery_app),
        # Test hook for tests/reliability: unset in any real deployment.
        crash_on_dataset=os.environ.get("TRAINYARD_TEST_CRASH_DATASET_NAME") or None,
    )


@worker_ready.connect
def advertise(sender: object, **_: object) -> None:
    """The worker tells the fleet table what it listens on and what CUDA devices it has."""
    resources = worker_resources()
    queues = sorted(queue.name for queue in sender.task_consumer.queues)  # type: ignore[attr-defined]
    with transaction(resources.session_factory) as session:
        fleet.register_worker(
            session, resources.worker_id, socket.gethostname(), queues, cuda_inventory()
        )


@worker_ready.connect
def start_reconciler(**_: object) -> None:
    """Every worker watches for leased work whose worker vanished or whose message was lost;
    the updates are atomic, so several workers doing it at once is harmless. Studies a dead
    worker left without their next trials are advanced too, and each pass shows the worker
    alive in the fleet table."""
    resources = worker_resources()
    Reconciler(
        WORK_KINDS,
        resources.session_factory,
        resources.queue,
        settings,
        sweeps=(lambda: advance_stalled_studies(resources), lambda: seen(resources)),
    ).start()


def seen(resources: WorkerResources) -> None:
    with transaction(resources.session_factory) as session:
        fleet.touch_worker(session, resources.worker_id)


@worker_shutdown.connect
def leave_fleet(**_: object) -> None:
    resources = worker_resources()
    try:
        with transaction(resources.session_factory) as session:
            fleet.remove_worker(session, resources.worker_id)
    except Exception:
        # A database that is down now: the row ages out of the live workers by itself.
        log.warning("could not remove worker %s from the fleet table", resources.worker_id)


@worker_ready.connect
def serve_own_metrics(**_: object) -> None:
    """A worker on a machine without an API process serves its own `/metrics`, if asked."""
    if settings.worker_metrics_port is not None:
        metrics.start_worker_exporter(settings.worker_metrics_host, settings.worker_metrics_port)


@worker_shutdown.connect
def leave_metrics(**_: object) -> None:
    """The worker's live gauges (GPU memory) leave the machine's metrics with it."""
    metrics.process_exited(os.getpid())


@worker_shutting_down.connect
def hand_back_running_work(**_: object) -> None:
    """SIGTERM / Ctrl-C: the running work stops at its next step and goes back to the queue."""
    worker_resources().shutdown.set()


@celery_app.task(name=TRAIN_JOB_TASK)
def train_job(job_id: str) -> str:
    resources = worker_resources()
    if resources.shutdown.is_set():
        # A stopping worker leaves new work to the others: the message goes back unclaimed.
        raise Reject("worker is shutting down", requeue=True)
    # A study's trial reports each epoch to the study and advances it when it ends.
    return run_training_job(resources, job_id, observe=observe_trial)


@celery_app.task(name=JOIN_JOB_TASK)
def join_job(slot_id: str) -> str:
    """A node beyond the first of a job on several workers: this worker's share of its ranks."""
    resources = worker_resources()
    if resources.shutdown.is_set():
        raise Reject("worker is shutting down", requeue=True)
    return run_job_slot(resources, slot_id)


@celery_app.task(name=BATCH_PREDICT_TASK)
def batch_predict(batch_id: str) -> str:
    resources = worker_resources()
    if resources.shutdown.is_set():
        raise Reject("worker is shutting down", requeue=True)
    return run_batch_prediction(resources, batch_id)


@celery_app.task(name=EVALUATE_MODEL_TASK)
def evaluate_model(evaluation_id: str) -> str:
    resources = worker_resources()
    if resources.shutdown.is_set():
        raise Reject("worker is shutting down", requeue=True)
    return run_evaluation(resources, evaluation_id)
