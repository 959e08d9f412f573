"""One evaluation on a worker: claim it, load the model and the dataset, score, record.

The claim, the kept lease, the fenced writes and the ends a run can come to are the leased-work
kernel's (service/core/leased_run.py). Scoring is one step: a run whose worker died is queued
again by the reconciler and scores from the start; one whose worker stops is handed back.
"""

from __future__ import annotations

import torch
from sqlalchemy.orm import Session

from engine.artifacts import MODEL_FILES, load_model
from engine.evaluation import evaluate_dataset
from service.core.events import LOG, evaluation_topic
from service.core.leased_run import LeasedRun, WorkerResources, WorkStopped
from service.core.leases import SUCCEEDED
from service.core.queue import EVALUATE_MODEL_TASK
from service.datasets.service import read_dataset
from service.datasets.tables import Dataset
from service.evaluations.repository import evaluations
from service.evaluations.tables import Evaluation
from service.models.tables import model_file_key


class EvaluationRun(LeasedRun):
    repository = evaluations
    task = EVALUATE_MODEL_TASK
    topic_of = staticmethod(evaluation_topic)

    row: Evaluation
    dataset: Dataset

    def claimed(self, session: Session) -> bool:
        # The dataset's record: a dataset deleted since the submit leaves nothing to run.
        self.dataset = session.get(Dataset, self.row.dataset_id)
        return self.dataset is not None

    def work(self) -> str:
        store, row = self.store, self.row
        spec, pipeline, model = load_model(
            {name: store.read_bytes(model_file_key(row.model_id, name)) for name in MODEL_FILES}
        )
        data = read_dataset(store, self.dataset)
        if self.should_stop():
            raise WorkStopped
        # On the CPU: scoring is one forward pass over the dataset, and the default queue's
        # workers need not have a GPU.
        report = evaluate_dataset(spec, pipeline, model, data, torch.device("cpu"))
        self.publish(LOG, {"message": f"scored {report['rows']} rows"})
        if not self.finish(SUCCEEDED, report=report):
            return "lost"
        return SUCCEEDED


def run_evaluation(resources: WorkerResources, evaluation_id: str) -> str:
    """Score evaluation `evaluation_id` if this worker can claim it; returns what happened."""
    return EvaluationRun(resources, evaluation_id).execute()
