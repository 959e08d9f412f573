"""Job queries: the leased-work kernel's (service/core/leases.py), and the epoch records that
are a job's own. Every write a worker makes is fenced by its lease token."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from service.core.leases import LeasedWorkRepository
from service.jobs.tables import Job, JobMetric

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
