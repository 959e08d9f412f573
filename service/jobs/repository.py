"""Job queries: the leased-work kernel's (service/core/leases.py), and the epoch records that
are a job's own. Every write a worker makes is fenced by its lease token."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from service.core.leases import LeasedWorkRepository
from service.jobs.tables import Job, JobMetric


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


jobs = JobRepository(Job, "job")
