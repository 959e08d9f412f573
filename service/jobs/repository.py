"""Job queries: the leased-work kernel's (service/core/leases.py), and the epoch records that
are a job's own. Every write a worker makes is fenced by its lease token."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from service.core.database import utcnow
from service.core.leases import RUNNING, LeasedWorkRepository
from service.jobs.tables import Job, JobMetric, JobSlot

# The history's name for a layer's gradient norm is this prefix and the layer's name.
GRAD_NORM_PREFIX = "grad_norm/"


class JobRepository(LeasedWorkRepository[Job]):
    def record_epochs(
        self,
        session: Session,
        job_id: str,
        token: str,
        history: Sequence[tuple[int, dict[str, float]]],
        latest: dict[str, Any],
    ) -> bool:
        """Several epochs at once: one history row per epoch and name (an epoch recorded
        before, by an attempt that did not live to checkpoint it, is replaced), and the job's
        latest `metrics`, `progress` and `warnings` from `latest`. False if the lease is lost.

        `history` runs on from the last epoch recorded or checkpointed: rows of its epochs and
        of any later one (left by an attempt that died before its checkpoint) are replaced."""
        if not self.write_held(session, job_id, token, **latest):
            return False
        if history:
            first = min(epoch for epoch, _ in history)
            session.execute(
                delete(JobMetric).where(JobMetric.job_id == job_id, JobMetric.epoch >= first)
            )
            session.execute(
                insert(JobMetric),
                [
                    {"job_id": job_id, "epoch": epoch, "name": name, "value": value}
                    for epoch, values in history
                    for name, value in values.items()
                ],
            )
        return True

    def metric_rows(self, session: Session, job_id: str) -> Sequence[JobMetric]:
        query = select(JobMetric).where(JobMetric.job_id == job_id)
        return session.scalars(query.order_by(JobMetric.epoch, JobMetric.name)).all()

    def get_many(self, session: Session, project_id: str, job_ids: Sequence[str]) -> list[Job]:
        """This project's jobs among `job_ids`, in no particular order; others' are absent."""
        query = select(Job).where(Job.project_id == project_id, Job.id.in_(job_ids))
        return list(session.scalars(query).all())

    def curve_rows(self, session: Session, job_ids: Sequence[str]) -> Sequence[JobMetric]:
        """The history rows of several jobs, by job, epoch and name, less the per-layer
        gradient norms (`grad_norm/<layer>`): health readings, many per epoch, not curves."""
        query = select(JobMetric).where(
            JobMetric.job_id.in_(job_ids),
            ~JobMetric.name.startswith(GRAD_NORM_PREFIX, autoescape=True),
        )
        order = (JobMetric.job_id, JobMetric.epoch, JobMetric.name)
        return session.scalars(query.order_by(*order)).all()


jobs = JobRepository(Job, "job")

SLOT_QUEUED, SLOT_RUNNING, SLOT_FINISHED = "queued", "running", "finished"


class JobSlotRepository:
    """The nodes beyond the first of a job's attempt on several workers. The first node's
    worker opens them under the job's lease; each joining worker claims one atomically and
    holds it by a lease of its own while its ranks run."""

    def open(
        self, session: Session, job_id: str, token: str, endpoint: str, nodes: int
    ) -> list[JobSlot] | None:
        """Slots 1..nodes-1 of the job's current attempt, meeting at `endpoint`; None if
        `token` no longer holds the job."""
        job = session.scalar(select(Job).where(jobs.held(job_id, token)))
        if job is None:
            return None
        slots = [
            JobSlot(job_id=job_id, attempt=job.attempts, node_rank=rank, endpoint=endpoint)
            for rank in range(1, nodes)
        ]
        session.add_all(slots)
        session.flush()
        return slots

    def claim(
        self, session: Session, slot_id: str, worker_id: str, lease_seconds: int
    ) -> JobSlot | None:
        """Take a queued slot whose attempt still runs: the slot, or None (taken, or its
        attempt is over)."""
        slot = session.get(JobSlot, slot_id)
        if slot is None or not self.attempt_runs(session, slot):
            return None
        result = session.execute(
            update(JobSlot)
            .where(JobSlot.id == slot_id, JobSlot.status == SLOT_QUEUED)
            .values(
                status=SLOT_RUNNING,
                worker_id=worker_id,
                lease_expires_at=utcnow() + timedelta(seconds=lease_seconds),
            )
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:
            return None
        session.refresh(slot)
        return slot

    def attempt_runs(self, session: Session, slot: JobSlot) -> bool:
        """The slot's job still runs the attempt it was opened for, and no cancel is asked."""
        job = session.get(Job, slot.job_id, populate_existing=True)
        return (
            job is not None
            and job.status == RUNNING
            and job.attempts == slot.attempt
            and not job.cancel_requested
        )

    def renew(self, session: Session, slot_id: str, worker_id: str, lease_seconds: int) -> bool:
        result = session.execute(
            update(JobSlot)
            .where(
                JobSlot.id == slot_id,
                JobSlot.status == SLOT_RUNNING,
                JobSlot.worker_id == worker_id,
            )
            .values(lease_expires_at=utcnow() + timedelta(seconds=lease_seconds))
            .execution_options(synchronize_session=False)
        )
        return result.rowcount == 1

    def finish(self, session: Session, slot_id: str) -> None:
        session.execute(
            update(JobSlot)
            .where(JobSlot.id == slot_id)
            .values(status=SLOT_FINISHED, lease_expires_at=None)
            .execution_options(synchronize_session=False)
        )

    def lapsed(self, session: Session, job_id: str, attempt: int) -> Sequence[JobSlot]:
        """Claimed slots of the attempt whose worker stopped renewing their lease."""
        query = select(JobSlot).where(
            JobSlot.job_id == job_id,
            JobSlot.attempt == attempt,
            JobSlot.status == SLOT_RUNNING,
            JobSlot.lease_expires_at < utcnow(),
        )
        return session.scalars(query.order_by(JobSlot.node_rank)).all()

    def unclaimed(self, session: Session, job_id: str, attempt: int) -> Sequence[JobSlot]:
        query = select(JobSlot).where(
            JobSlot.job_id == job_id, JobSlot.attempt == attempt, JobSlot.status == SLOT_QUEUED
        )
        return session.scalars(query.order_by(JobSlot.node_rank)).all()

    def of_attempt(self, session: Session, job_id: str, attempt: int) -> Sequence[JobSlot]:
        query = select(JobSlot).where(JobSlot.job_id == job_id, JobSlot.attempt == attempt)
        return session.scalars(query.order_by(JobSlot.node_rank)).all()


slots = JobSlotRepository()
