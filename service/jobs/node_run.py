"""A node beyond the first of a training job on several workers (`training.resources.nodes`),
read top to bottom:

    claim the slot -> load the job's data and checkpoint from the store -> run this node's
    ranks at the attempt's rendezvous -> finish the slot.

The first node's worker holds the job's lease and records everything; a joining node records
nothing of the job. It holds its slot by a lease of its own (renewed while its ranks run) and
stops its ranks when the attempt it joined is over (the job ended, was cancelled, or went on
to another attempt). A node that dies breaks the rendezvous or the ranks' collectives, so the
first node's launcher fails and the attempt fails as for a lost rank (distributed_run.py).
"""

from __future__ import annotations

import logging
import threading

from engine.errors import EngineError, TrainingCancelled
from engine.spec import Spec
from engine.training.distributed_rank import Rendezvous
from engine.training.preparation import GivenSplits
from service.core.database import transaction
from service.core.leased_run import WorkerResources
from service.datasets.service import read_dataset
from service.datasets.tables import Dataset
from service.jobs.distributed_run import RanksFailed, train_distributed
from service.jobs.repository import jobs, slots
from service.jobs.tables import JobSlot, checkpoint_key

log = logging.getLogger(__name__)


class SlotKeeper(threading.Thread):
    """Renews the slot's lease and watches its attempt, once a second, so the node's ranks
    stop as soon as the attempt is over."""

    POLL_SECONDS = 1.0

    def __init__(self, resources: WorkerResources, slot: JobSlot) -> None:
        super().__init__(name=f"slot-{slot.id}", daemon=True)
        self.resources = resources
        self.slot = slot
        self.over = False
        self._stopped = threading.Event()

    def run(self) -> None:
        lease = self.resources.settings.lease_seconds
        while not self._stopped.wait(self.POLL_SECONDS):
            try:
                with transaction(self.resources.session_factory) as session:
                    renewed = slots.renew(session, self.slot.id, self.resources.worker_id, lease)
                    self.over = not renewed or not slots.attempt_runs(session, self.slot)
            except Exception:
                log.warning("slot %s: the database did not answer", self.slot.id, exc_info=True)
            if self.over:
                return

    def should_stop(self) -> bool:
        return self.over or self.resources.shutdown.is_set()

    def stop(self) -> None:
        self._stopped.set()


def run_job_slot(resources: WorkerResources, slot_id: str) -> str:
    """Join the attempt of slot `slot_id` if this worker can claim it; returns what happened
    on this node (`skipped`, `succeeded`, `stopped`, `failed`)."""
    settings = resources.settings
    with transaction(resources.session_factory) as session:
        slot = slots.claim(session, slot_id, resources.worker_id, settings.lease_seconds)
        job = jobs.get_any(session, slot.job_id) if slot else None
        if slot is None or job is None:
            log.info("slot %s not claimed: taken, or its attempt is over", slot_id)
            return "skipped"
        dataset = session.get(Dataset, job.dataset_id)
        given_rows = {
            split: session.get(Dataset, dataset_id)
            for split, dataset_id in (
                ("validation", job.validation_dataset_id),
                ("test", job.test_dataset_id),
            )
            if dataset_id is not None
        }
    log.info("job %s: joining attempt %d as node %d", job.id, slot.attempt, slot.node_rank)
    keeper = SlotKeeper(resources, slot)
    keeper.start()
    outcome = "succeeded"
    try:
        spec = Spec.model_validate(job.resolved_spec or job.spec)
        key = checkpoint_key(job.id)
        # The first node read the same checkpoint: no rank trains before all nodes meet.
        resume = resources.store.read_bytes(key) if resources.store.exists(key) else None
        train_distributed(
            spec,
            read_dataset(resources.store, dataset),
            GivenSplits(
                **{split: read_dataset(resources.store, row) for split, row in given_rows.items()}
            ),
            resume_from=resume,
            checkpoint_interval_seconds=settings.checkpoint_interval_seconds,
            on_epoch=lambda _: None,
            on_checkpoint=lambda _: None,
            should_stop=keeper.should_stop,
            rendezvous=Rendezvous(
                slot.endpoint,
                run_id=f"{job.id}-{slot.attempt}",
                nodes=spec.training.resources.nodes,
                hosts=False,
                timeout_seconds=settings.rendezvous_timeout_seconds,
            ),
            reports=False,
        )
    except TrainingCancelled:
        outcome = "stopped"
    except (RanksFailed, EngineError) as error:
        # The first node's attempt fails with it and says why; this node only logs.
        log.warning("job %s node %d failed: %s", job.id, slot.node_rank, error)
        outcome = "failed"
    except Exception:
        log.exception("job %s node %d failed", job.id, slot.node_rank)
        outcome = "failed"
    finally:
        keeper.stop()
        with transaction(resources.session_factory) as session:
            slots.finish(session, slot.id)
    return outcome
