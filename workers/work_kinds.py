"""Every kind of leased work a worker runs, and so looks after: the reconciler takes back any
of them whose worker vanished or whose message was lost."""

from __future__ import annotations

from service.batch_predictions.repository import batch_predictions
from service.core.events import batch_topic, evaluation_topic, job_topic
from service.core.queue import BATCH_PREDICT_TASK, EVALUATE_MODEL_TASK, TRAIN_JOB_TASK
from service.core.reconciler import LeasedWork
from service.evaluations.repository import evaluations
from service.jobs.repository import jobs

WORK_KINDS = (
    LeasedWork(jobs, TRAIN_JOB_TASK, job_topic),
    LeasedWork(batch_predictions, BATCH_PREDICT_TASK, batch_topic),
    LeasedWork(evaluations, EVALUATE_MODEL_TASK, evaluation_topic),
)
