"""Running a training job on a worker: claim it, keep the lease alive, train, record.

The worker task calls `run_training_job`; everything it writes is fenced by the lease token,
so a duplicate delivery does nothing and a worker that lost its lease changes nothing.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from engine.errors import EngineError, TrainingCancelled
from engine.spec import Spec
from engine.training.checkpoint import Checkpoint, checkpoint_from_bytes, checkpoint_to_bytes
from engine.training.recipe import FoldReport, train
from engine.training.trainer import EpochReport
from service.core.database import new_id, transaction
from service.core.queue import JobQueue
from service.core.settings import Settings
from service.core.store import Store
from service.datasets.service import read_dataset
from service.datasets.tables import Dataset
from service.jobs import repository
from service.jobs.tables import CANCELLED, FAILED, SUCCEEDED, checkpoint_key
from service.models import repository as model_repository
from service.models.service import registered_name
from service.models.tables import Model, model_file_key

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class JobResources:
    session_factory: sessionmaker[Session]
    store: Store
    settings: Settings
    worker_id: str
    queue: JobQueue
    # Set when the worker is asked to stop: the running job is handed back, not failed.
    shutdown: threading.Event = field(default_factory=threading.Event)
    # Test hook, off unless set (TRAINYARD_TEST_CRASH_DATASET_NAME on the worker): a job on a
    # dataset of this name kills its worker mid-epoch, for the poison-job test.
    crash_on_dataset: str | None = None


class LeaseKeeper(threading.Thread):
    """Renews the job's lease in the background and notices cancel requests, so the
    training loop only ever reads flags."""

    # A cancel is noticed within this many seconds; the lease is renewed every third of it.
    CANCEL_POLL_SECONDS = 1.0

    def __init__(self, resources: JobResources, job_id: str, token: str) -> None:
        super().__init__(name=f"lease-{job_id}", daemon=True)
        self.resources = resources
        self.job_id = job_id
        self.token = token
        self.lease_seconds = resources.settings.lease_seconds
        self.cancel_requested = False
        self.lost = False
        self._stopped = threading.Event()

    def run(self) -> None:
        renew_every = self.lease_seconds / 3
        renewed_at = time.monotonic()
        while not self._stopped.wait(min(self.CANCEL_POLL_SECONDS, renew_every)):
            try:
                with transaction(self.resources.session_factory) as session:
                    self.cancel_requested = repository.is_cancel_requested(session, self.job_id)
                    if time.monotonic() - renewed_at >= renew_every:
                        if not repository.renew_lease(
                            session, self.job_id, self.token, self.lease_seconds
                        ):
                            self.lost = True
                            return
                        renewed_at = time.monotonic()
            except Exception:
                # A database blip: try again next beat; the lease outlives a few misses.
                log.warning("lease renewal for %s failed", self.job_id, exc_info=True)

    def should_stop(self) -> bool:
        return self.cancel_requested or self.lost or self.resources.shutdown.is_set()

    def stop(self) -> None:
        self._stopped.set()


def run_training_job(resources: JobResources, job_id: str) -> str:
    """Train job `job_id` if this worker can claim it; returns what happened."""
    settings = resources.settings
    with transaction(resources.session_factory) as session:
        token = repository.claim_job(session, job_id, resources.worker_id, settings.lease_seconds)
        job = repository.get_any(session, job_id) if token else None
        dataset = session.get(Dataset, job.dataset_id) if job else None
    if token is None or job is None or dataset is None:
        log.info("job %s not claimed: finished or held by another worker", job_id)
        return "skipped"

    keeper = LeaseKeeper(resources, job_id, token)
    keeper.start()
    # When the final model's epochs began: cross-validation folds run before them.
    clock = {"started": time.monotonic()}
    warnings: list[dict] = list(job.warnings or [])
    store = resources.store

    def on_epoch(report: EpochReport) -> None:
        elapsed = time.monotonic() - clock["started"]
        progress = {
            "epoch": report.epoch,
            "epochs": report.epochs,
            "samples_per_second": round(report.samples_per_second, 1),
            "eta_seconds": round(elapsed / report.epoch * (report.epochs - report.epoch), 1),
        }
        known = {w["code"] for w in warnings}
        warnings.extend(w for w in report.warnings if w["code"] not in known)
        recorded = retrying_write(
            resources,
            lambda session: repository.record_epoch(
                session,
                job_id,
                token,
                report.epoch,
                report.metrics,
                progress,
                history=epoch_history(report),
                warnings=warnings,
            ),
        )
        if not recorded:
            keeper.lost = True

    def on_fold(report: FoldReport) -> None:
        # Fold models keep out of the metrics history (it is the final model's); the
        # progress says how far cross-validation has come.
        progress = {
            "epoch": 0,
            "epochs": job.spec.get("training", {}).get("epochs", 0),
            "fold": report.fold,
            "folds": report.folds,
        }
        if not retrying_write(
            resources, lambda session: repository.record_progress(session, job_id, token, progress)
        ):
            keeper.lost = True
        clock["started"] = time.monotonic()

    def on_checkpoint(checkpoint: Checkpoint) -> None:
        # Written under a temporary name and renamed: a crash never leaves half a checkpoint.
        store.write_bytes(checkpoint_key(job_id), checkpoint_to_bytes(checkpoint))

    try:
        spec = Spec.model_validate(job.spec)
        data = read_dataset(store, dataset)
        # A job claimed again (its worker died or stopped) goes on from its last epoch.
        resume_from = None
        if store.exists(checkpoint_key(job_id)):
            resume_from = store.read_bytes(checkpoint_key(job_id))
            epoch = checkpoint_from_bytes(resume_from).epoch
            log.info("job %s resumes after epoch %d (attempt %d)", job_id, epoch, job.attempts)
        trained = train(
            spec,
            data,
            on_epoch=on_epoch,
            should_cancel=(
                _dies_mid_epoch(keeper.should_stop)
                if dataset.name == resources.crash_on_dataset
                else keeper.should_stop
            ),
            on_checkpoint=on_checkpoint,
            resume_from=resume_from,
            on_fold=on_fold,
        )
        if keeper.lost:
            return "lost"
        model_id = new_id("mdl")
        for name, data in trained.files().items():
            resources.store.write_bytes(model_file_key(model_id, name), data)

        model_name = registered_name(spec, dataset.name)

        def record_model(session: Session) -> bool:
            model_repository.add(
                session,
                Model(
                    id=model_id,
                    project_id=job.project_id,
                    job_id=job.id,
                    dataset_id=dataset.id,
                    name=model_name,
                    version=model_repository.next_version(session, job.project_id, model_name),
                    task=spec.task,
                    metrics=trained.metrics,
                ),
            )
            if repository.finish_job(
                session, job_id, token, SUCCEEDED, model_id=model_id, report=trained.report()
            ):
                return True
            session.rollback()
            return False

        # Two workers finishing models of one dataset at once may pick the same version: the
        # loser numbers its model again.
        if not retrying_write(resources, record_model, also_retry=(IntegrityError,)):
            resources.store.delete_prefix(f"models/{model_id}")
            return "lost"
        store.delete_prefix(f"jobs/{job_id}")
        return SUCCEEDED
    except TrainingCancelled:
        if keeper.lost:
            return "lost"
        if resources.shutdown.is_set() and not keeper.cancel_requested:
            released = retrying_write(
                resources, lambda session: repository.release_job(session, job_id, token)
            )
            if released:
                resources.queue.enqueue_training(job_id, job.queue)
            return "released"
        _finish(resources, job_id, token, CANCELLED)
        return CANCELLED
    except EngineError as exc:
        _finish(resources, job_id, token, FAILED, exc.code, exc.message)
        return FAILED
    except Exception as exc:
        log.exception("job %s failed", job_id)
        _finish(resources, job_id, token, FAILED, "internal_error", f"{type(exc).__name__}: {exc}")
        return FAILED
    finally:
        keeper.stop()


def epoch_history(report: EpochReport) -> dict[str, float]:
    """What the metrics history keeps for an epoch: the metrics, the learning rate and the
    training-health readings (gradient norm per layer, dead ReLU fraction)."""
    history = {**report.metrics, "learning_rate": report.learning_rate}
    health = report.health or {}
    for layer, norm in (health.get("grad_norm") or {}).items():
        history[f"grad_norm/{layer}"] = norm
    if health.get("dead_relu_fraction") is not None:
        history["dead_relu_fraction"] = health["dead_relu_fraction"]
    return history


def _finish(
    resources: JobResources,
    job_id: str,
    token: str,
    status: str,
    code: str | None = None,
    message: str | None = None,
) -> None:
    retrying_write(
        resources,
        lambda session: repository.finish_job(
            session, job_id, token, status, error_code=code, error_message=message
        ),
    )


def retrying_write(
    resources: JobResources,
    write: Callable[[Session], T],
    also_retry: tuple[type[Exception], ...] = (),
) -> T:
    """`write` in a transaction of its own, tried again through a database blip (a restart,
    a failover) for up to a lease: past that the lease has lapsed and the write is fenced
    off anyway."""
    deadline = time.monotonic() + resources.settings.lease_seconds
    delay = 0.2
    while True:
        try:
            with transaction(resources.session_factory) as session:
                return write(session)
        except (OperationalError, InterfaceError, *also_retry):
            if time.monotonic() + delay > deadline:
                raise
            log.warning("database write failed; trying again in %.1f s", delay, exc_info=True)
            time.sleep(delay)
            delay = min(delay * 2, 2.0)


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
