from __future__ import annotations

from service.core.queue import TRAIN_JOB_TASK
from workers.app import celery_app, train_job


def test_the_worker_accepts_json_messages_only() -> None:
    # A pickled message could carry code; the worker must refuse anything but JSON.
    assert celery_app.conf.accept_content == ["json"]
    assert celery_app.conf.task_serializer == "json"


def test_a_job_message_is_acknowledged_only_after_the_task_returns() -> None:
    assert celery_app.conf.task_acks_late is True
    assert celery_app.conf.worker_prefetch_multiplier == 1


def test_the_training_task_is_registered_under_the_name_the_service_sends() -> None:
    assert train_job.name == TRAIN_JOB_TASK
    assert TRAIN_JOB_TASK in celery_app.tasks
