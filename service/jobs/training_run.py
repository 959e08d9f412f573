"""One training job on a worker, read top to bottom:

    claim -> load the data once -> train (epoch, fold and checkpoint callbacks) -> store the
    model -> register it and finish; or, stopped, cancel or hand back to the queue.

With `training.resources` asking for more than one rank, the training step runs under
torch.distributed.run (service/jobs/distributed_run.py) and reports through the same
callbacks; a rank that dies fails the attempt, and the job goes back to the queue to resume
from its checkpoint.

The claim, the kept lease, the fenced writes and the ends a run can come to are the leased-work
kernel's (service/core/leased_run.py); this module holds what is a training job's own.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Callable
from typing import Any, Protocol

import pyarrow as pa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine.data.arrays.dataset import ArrayData
from engine.errors import TrainingCancelled
from engine.spec import Spec
from engine.training.checkpoint import Checkpoint, checkpoint_from_bytes, checkpoint_to_bytes
from engine.training.distributed_rank import Rendezvous
from engine.training.preparation import GivenSplits
from engine.training.pretraining import pretraining_epochs
from engine.training.recipe import FoldReport, train
from engine.training.trainer import EpochReport
from service.core import metrics
from service.core.database import new_id
from service.core.events import LOG, PROGRESS, WARNING, job_topic
from service.core.leased_run import LeasedRun, WorkerResources, WorkStopped
from service.core.leases import FAILED, SUCCEEDED
from service.core.queue import JOIN_JOB_TASK, TRAIN_JOB_TASK
from service.datasets.service import read_dataset
from service.datasets.tables import Dataset
from service.jobs.distributed_run import RanksFailed, free_port, train_distributed
from service.jobs.epoch_recorder import EpochRecorder
from service.jobs.node_watch import NodeWatch
from service.jobs.repository import jobs, slots
from service.jobs.tables import Job, checkpoint_key
from service.models import repository as model_repository
from service.models.service import registered_name
from service.models.tables import Model, model_file_key

log = logging.getLogger(__name__)


class Trained(Protocol):
    """What a run records of its trained model: the engine's TrainedModel in one process, or
    what rank 0 left of it (engine/training/distributed_rank.py's ModelOutput)."""

    metrics: dict[str, float]

    def files(self) -> dict[str, bytes]: ...

    def report(self) -> dict[str, Any]: ...


class TrainingObserver(Protocol):
    """What another domain watches of a job it made (a study, of its trials): each epoch,
    and how the run ended. The jobs domain knows it only by this shape."""

    def on_epoch(self, report: EpochReport) -> str | None:
        """A reason to stop the job now (it ends cancelled with that reason), or None."""

    def on_end(self, outcome: str) -> None: ...


# Given the claimed job, its observer, or None for a job nobody watches.
ObserverFactory = Callable[[Job, WorkerResources], TrainingObserver | None]


class TrainingRun(LeasedRun):
    repository = jobs
    task = TRAIN_JOB_TASK
    topic_of = staticmethod(job_topic)
    # The engine stops between steps with TrainingCancelled when should_stop says so.
    stop_exceptions = (WorkStopped, TrainingCancelled)

    row: Job
    dataset: Dataset
    given_datasets: dict[str, Dataset]
    epochs: EpochRecorder
    total_epochs: int

    def __init__(
        self, resources: WorkerResources, job_id: str, observe: ObserverFactory | None = None
    ) -> None:
        super().__init__(resources, job_id)
        self.observe = observe
        self.observer: TrainingObserver | None = None
        # Why the job stops itself (its observer said so), or None.
        self.stop_reason: str | None = None

    def claimed(self, session: Session) -> bool:
        # The datasets' records: a dataset deleted since the submit leaves nothing to run.
        self.dataset = session.get(Dataset, self.row.dataset_id)
        given_ids = {"validation": self.row.validation_dataset_id, "test": self.row.test_dataset_id}
        self.given_datasets = {
            split: session.get(Dataset, dataset_id)
            for split, dataset_id in given_ids.items()
            if dataset_id is not None
        }
        return self.dataset is not None and None not in self.given_datasets.values()

    def work(self) -> str:
        job = self.row
        # What was checked at submit, its default model filled in; jobs from before that was
        # stored resolve their model in the engine, as they always did.
        spec = Spec.model_validate(job.resolved_spec or job.spec)
        # What progress counts to: the pretraining's RBM epochs come first.
        self.total_epochs = pretraining_epochs(spec) + spec.training.epochs
        self.epochs = EpochRecorder(
            self._write_epochs, list(job.warnings or []), worker=self.resources.worker_id
        )
        self.observer = self.observe(job, self.resources) if self.observe else None
        data = self.load_data()
        try:
            trained = self.train(spec, data)
        except RanksFailed as failure:
            return self.attempt_failed(str(failure))
        if not self.epochs.flush() or self.lost:
            return "lost"
        model_id = self.store_model(trained)
        if not self.register_and_finish(spec, trained, model_id):
            self.store.delete_prefix(f"models/{model_id}")
            return "lost"
        self.store.delete_prefix(f"jobs/{job.id}")
        return SUCCEEDED

    # The steps, in the order they run.
    def load_data(self) -> pa.Table | ArrayData:
        """The dataset, read from the store once for the whole job."""
        return read_dataset(self.store, self.dataset)

    def load_given(self) -> GivenSplits:
        """The validation and test datasets the job names, read once too."""
        return GivenSplits(
            **{split: read_dataset(self.store, row) for split, row in self.given_datasets.items()}
        )

    def train(self, spec: Spec, data: pa.Table | ArrayData) -> Trained:
        """The trained model: here, or with more than one rank under torch.distributed.run
        (service/jobs/distributed_run.py), reporting through the same callbacks."""
        if spec.training.resources.world_size == 1:
            return train(
                spec,
                data,
                given=self.load_given(),
                on_epoch=self.on_epoch,
                should_cancel=self._cancel_check(),
                on_checkpoint=self.save_checkpoint,
                resume_from=self.latest_checkpoint(),
                on_fold=self.on_fold,
                checkpoint_interval_seconds=self.settings.checkpoint_interval_seconds,
            )
        rendezvous, nodes = self.open_rendezvous(spec)
        trained = train_distributed(
            spec,
            data,
            self.load_given(),
            resume_from=self.latest_checkpoint(),
            checkpoint_interval_seconds=self.settings.checkpoint_interval_seconds,
            on_epoch=self.on_epoch,
            on_checkpoint=self.save_checkpoint_bytes,
            should_stop=self.should_stop,
            rendezvous=rendezvous,
            node_failure=nodes.failure if nodes else None,
        )
        assert trained is not None  # this node reports
        return trained

    def open_rendezvous(self, spec: Spec) -> tuple[Rendezvous | None, NodeWatch | None]:
        """On several nodes, this worker is the first: it hosts the attempt's rendezvous and
        opens a slot per other node, whose join task another worker takes
        (service/jobs/node_run.py), and watches those nodes (service/jobs/node_watch.py).
        (None, None) on one node."""
        nodes = spec.training.resources.nodes
        if nodes == 1:
            return None, None
        endpoint = f"{self.settings.worker_host}:{free_port()}"
        opened: list[str] = []

        def open_slots(session: Session) -> bool:
            new = slots.open(session, self.row_id, self.token, endpoint, nodes)
            opened.extend(slot.id for slot in new or [])
            return new is not None

        if not self.write(open_slots):
            raise WorkStopped("the lease was lost")
        # Sent after the commit, so the joining worker finds its slot.
        for slot_id in opened:
            self.resources.queue.enqueue(JOIN_JOB_TASK, slot_id, self.row.queue)
        self.publish(LOG, {"message": f"waiting for {nodes - 1} more nodes at {endpoint}"})
        rendezvous = Rendezvous(
            endpoint,
            run_id=f"{self.row_id}-{self.row.attempts}",
            nodes=nodes,
            hosts=True,
            timeout_seconds=self.settings.rendezvous_timeout_seconds,
        )
        watch = NodeWatch(
            self.resources,
            self.row_id,
            self.row.attempts,
            self.row.queue,
            opened,
            publish=lambda data: self.publish(LOG, data),
        )
        return rendezvous, watch

    def latest_checkpoint(self) -> bytes | None:
        """A job claimed again (its worker died or stopped) goes on from its last checkpoint."""
        key = checkpoint_key(self.row_id)
        if not self.store.exists(key):
            return None
        checkpoint = self.store.read_bytes(key)
        epoch = checkpoint_from_bytes(checkpoint).epoch
        log.info(
            "job %s resumes after epoch %d (attempt %d)", self.row_id, epoch, self.row.attempts
        )
        self.publish(LOG, {"message": f"resumed from the checkpoint after epoch {epoch}"})
        return checkpoint

    def on_epoch(self, report: EpochReport) -> None:
        if not self.epochs.add(report):
            self.lose_lease()
        metrics.record_gpu(self.resources.worker_id)
        self.publish(PROGRESS, self.epochs.progress)
        for warning in self.epochs.new_warnings:
            self.publish(WARNING, {"epoch": report.epoch, **warning})
        if self.observer is not None and self.stop_reason is None:
            self.stop_reason = self.observer.on_epoch(report)

    def should_stop(self) -> bool:
        return self.stop_reason is not None or super().should_stop()

    def stop_details(self) -> dict[str, Any]:
        if self.stop_reason is None:
            return {}
        return {"error_code": "pruned", "error_message": self.stop_reason}

    def on_fold(self, report: FoldReport) -> None:
        # Fold models keep out of the metrics history (it is the final model's); the progress
        # says how far cross-validation has come.
        progress = {
            "epoch": 0,
            "epochs": self.total_epochs,
            "fold": report.fold,
            "folds": report.folds,
        }
        if self.write(
            lambda session: jobs.write_held(session, self.row_id, self.token, progress=progress)
        ):
            self.publish(PROGRESS, progress)
        self.epochs.restart_clock()

    def save_checkpoint(self, checkpoint: Checkpoint) -> None:
        # The history first: a run resumed from this checkpoint must find every epoch before
        # it recorded. Written under a temporary name and renamed by the store: a crash never
        # leaves half a checkpoint.
        self.save_checkpoint_bytes(checkpoint_to_bytes(checkpoint))

    def save_checkpoint_bytes(self, checkpoint: bytes) -> None:
        if not self.epochs.flush():
            self.lose_lease()
            return
        self.store.write_bytes(checkpoint_key(self.row_id), checkpoint)

    def attempt_failed(self, reason: str) -> str:
        """A rank died: like a worker lost mid-run, the attempt is over and the job goes back
        to the queue to resume from its last checkpoint, until it has had max_attempts."""
        log.warning("job %s: a rank failed: %s", self.row_id, reason)
        if not self.epochs.flush() or self.lost:
            return "lost"
        attempts = self.row.attempts
        if attempts < self.settings.max_attempts:
            return self.hand_back(
                f"attempt {attempts} failed ({reason.splitlines()[0]}); queued again to resume "
                "from the last checkpoint"
            )
        message = f"{reason}\ngave up after {attempts} attempts"
        self.finish(FAILED, error_code="rank_failed", error_message=message)
        return FAILED

    def store_model(self, trained: Trained) -> str:
        """The model's folder in the store; its id."""
        model_id = new_id("mdl")
        for name, content in trained.files().items():
            self.store.write_bytes(model_file_key(model_id, name), content)
        return model_id

    def register_and_finish(self, spec: Spec, trained: Trained, model_id: str) -> bool:
        """Register the model as its name's next version and mark the job succeeded, in one
        transaction; False if the lease was lost."""
        job, name = self.row, registered_name(spec, self.dataset.name)

        def record(session: Session) -> bool:
            model_repository.add(
                session,
                Model(
                    id=model_id,
                    project_id=job.project_id,
                    job_id=job.id,
                    dataset_id=self.dataset.id,
                    name=name,
                    version=model_repository.next_version(session, job.project_id, name),
                    task=spec.task,
                    metrics=trained.metrics,
                ),
            )
            report = trained.report()
            if jobs.finish(
                session, job.id, self.token, SUCCEEDED, model_id=model_id, report=report
            ):
                return True
            session.rollback()
            return False

        # Two workers finishing models of one name at once may pick the same version: the
        # loser numbers its model again.
        if not self.write(record, also_retry=(IntegrityError,)):
            return False
        self.ended(SUCCEEDED)
        return True

    def before_stop(self) -> None:
        # Cancelled or handed back: the epochs trained so far are kept.
        if not self.epochs.flush():
            self.lose_lease()

    def _write_epochs(self, history: list, latest: dict[str, Any]) -> bool:
        return self.write(
            lambda session: jobs.record_epochs(session, self.row_id, self.token, history, latest)
        )

    def _cancel_check(self) -> Callable[[], bool]:
        if self.dataset.name == self.resources.crash_on_dataset:
            return _dies_mid_epoch(self.should_stop)
        return self.should_stop


def run_training_job(
    resources: WorkerResources, job_id: str, observe: ObserverFactory | None = None
) -> str:
    """Train job `job_id` if this worker can claim it; returns what happened."""
    run = TrainingRun(resources, job_id, observe)
    outcome = run.execute()
    if run.observer is not None:
        run.observer.on_end(outcome)
    return outcome


def _dies_mid_epoch(should_stop: Callable[[], bool]) -> Callable[[], bool]:
    """The test hook's crash: the process exits at the third training step, as on an OOM
    kill, with no chance to hand the job back."""
    steps = itertools.count(1)

    def check() -> bool:
        if next(steps) == 3:
            log.warning("test hook: killing this worker mid-epoch")
            os._exit(137)
        return should_stop()

    return check
