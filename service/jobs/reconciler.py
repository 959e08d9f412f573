"""The database is the source of truth: jobs whose worker vanished go back to the queue.

A worker that is killed (SIGKILL, OOM, a lost machine) stops renewing its lease. Once the
lease lapses the job is queued again, and the next worker resumes it from its latest
checkpoint; after `max_attempts` claims it fails instead, so a job that kills every worker
cannot loop forever.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from service.core.database import transaction, utcnow
from service.core.queue import JobQueue
from service.core.settings import Settings
from service.jobs import repository
from service.jobs.tables import FAILED, QUEUED

log = logging.getLogger(__name__)


@dataclass
class ReconcileReport:
    requeued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def reconcile_lapsed_leases(
    session_factory: sessionmaker[Session], queue: JobQueue, settings: Settings
) -> ReconcileReport:
    report = ReconcileReport()
    with transaction(session_factory) as session:
        lapsed = [(job.id, job.attempts, job.queue) for job in repository.lapsed_leases(session)]
    for job_id, attempts, job_queue in lapsed:
        with transaction(session_factory) as session:
            if attempts >= settings.max_attempts:
                message = (
                    f"the job's worker stopped responding {attempts} times (killed or lost); "
                    f"gave up after {settings.max_attempts} attempts"
                )
                if repository.take_back_lapsed(
                    session,
                    job_id,
                    FAILED,
                    error_code="worker_lost",
                    error_message=message,
                    finished_at=utcnow(),
                ):
                    report.failed.append(job_id)
                continue
            if not repository.take_back_lapsed(session, job_id, QUEUED):
                continue
        # Enqueued after the commit, so the worker that takes it sees it queued.
        queue.enqueue_training(job_id, job_queue)
        report.requeued.append(job_id)
    if report.requeued or report.failed:
        log.warning("lapsed leases: requeued %s, failed %s", report.requeued, report.failed)
    return report


class Reconciler(threading.Thread):
    """Runs `reconcile_lapsed_leases` every half lease, in a worker process."""

    def __init__(
        self, session_factory: sessionmaker[Session], queue: JobQueue, settings: Settings
    ) -> None:
        super().__init__(name="reconciler", daemon=True)
        self.session_factory = session_factory
        self.queue = queue
        self.settings = settings
        self._stopped = threading.Event()

    def run(self) -> None:
        while not self._stopped.wait(max(1.0, self.settings.lease_seconds / 2)):
            try:
                reconcile_lapsed_leases(self.session_factory, self.queue, self.settings)
            except Exception:
                log.warning("reconciling lapsed leases failed; trying again", exc_info=True)

    def stop(self) -> None:
        self._stopped.set()
