"""The Celery side the service needs: one configuration for producer and workers, and
`JobQueue`, which sends wake-ups by task name (the service never imports worker code).

The database is the source of truth for leased work; a message only says "look at row X".
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from service.core.settings import Settings

TRAIN_JOB_TASK = "trainyard.train_job"
BATCH_PREDICT_TASK = "trainyard.batch_predict"
EVALUATE_MODEL_TASK = "trainyard.evaluate_model"
# A node beyond the first of a training job on several workers (service/jobs/node_run.py).
JOIN_JOB_TASK = "trainyard.join_job"
# The queue of jobs that ask for CUDA: only workers whose machine has CUDA listen on it.
GPU_QUEUE = "gpu"


def gpu_queue(gpus: int) -> str:
    """The queue of a job that needs `gpus` CUDA devices on one machine: `gpu` for one,
    `gpu<N>` for N. A machine with N devices listens on gpu, gpu2, ..., gpuN, so a job only
    ever reaches a worker with the devices it asks for."""
    return GPU_QUEUE if gpus <= 1 else f"{GPU_QUEUE}{gpus}"


def gpus_of_queue(queue: str) -> int:
    """The CUDA devices a machine needs to take work from `queue` (0: none)."""
    if queue == GPU_QUEUE:
        return 1
    count = queue.removeprefix(GPU_QUEUE)
    return int(count) if queue.startswith(GPU_QUEUE) and count.isdigit() else 0


def celery_config(settings: Settings) -> dict[str, Any]:
    transport_options: dict[str, Any] = {}
    if settings.uses_embedded_broker:
        queue_folder = settings.broker_folder / "queue"
        control_folder = settings.broker_folder / "control"
        for path in (queue_folder, control_folder):
            path.mkdir(parents=True, exist_ok=True)
        # One folder for both directions: producer and consumer share this machine.
        transport_options = {
            "data_folder_in": str(queue_folder),
            "data_folder_out": str(queue_folder),
            "control_folder": str(control_folder),
            "store_processed": False,
            # The folder is polled; the default (1 s) would add up to a second per job.
            "polling_interval": 0.2,
        }
    else:
        visibility = settings.broker_visibility_timeout
        transport_options = {
            "visibility_timeout": visibility,
            # Look for overdue messages often enough for the timeout to mean something
            # (kombu's default sweep is every 100 s).
            "unacked_restore_interval": max(1, min(10, visibility // 3)),
            "unacked_restore_throttle": 1 if visibility < 600 else 10,
        }
        if settings.broker_key_prefix:
            transport_options["global_keyprefix"] = settings.broker_key_prefix
    return {
        "broker_url": settings.effective_broker_url,
        "broker_transport_options": transport_options,
        "broker_connection_retry_on_startup": True,
        # JSON only: a message can never carry code to run.
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_serializer": "json",
        "task_ignore_result": True,
        "result_backend": None,
        "task_default_queue": settings.default_queue,
        # A message is acknowledged after its task returns, and a worker takes one at a time.
        "task_acks_late": True,
        "worker_prefetch_multiplier": 1,
        "worker_hijack_root_logger": False,
        "worker_enable_remote_control": not settings.uses_embedded_broker,
        "worker_send_task_events": False,
    }


def create_celery(settings: Settings) -> Celery:
    app = Celery("trainyard", set_as_current=False)
    app.conf.update(celery_config(settings))
    return app


class JobQueue:
    def __init__(self, celery: Celery) -> None:
        self.celery = celery

    def enqueue(self, task: str, row_id: str, queue: str) -> None:
        """Wake a worker on `queue` to run `task` (one of the task names above) for the row
        `row_id`; the row itself says what to do."""
        self.celery.send_task(task, args=[row_id], queue=queue)

    def pending(self, queue: str) -> int | None:
        """Messages waiting in `queue` (not those a worker holds); None if the broker can't
        say."""
        try:
            with self.celery.connection_for_write() as connection:
                connection.ensure_connection(max_retries=1, timeout=2)
                return connection.default_channel.queue_declare(queue=queue).message_count
        except Exception:
            return None

    def ping(self) -> None:
        with self.celery.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=2)
