"""The database is the source of truth: jobs whose worker vanished, or whose message the
broker lost, go back to the queue.

A worker that is killed (SIGKILL, OOM, a lost machine) stops renewing its lease. Once the
lease lapses the job is queued again, and the next worker resumes it from its latest
checkpoint; after `max_attempts` claims it fails instead, so a job that kills every worker
cannot loop forever.

A broker that restarts without its data (or a send that failed after the commit) leaves
`queued` jobs with no message. A job queued for `requeue_after_seconds` since its last send is
sent again when its queue holds fewer messages than it has queued jobs; a duplicate message
is harmless, since only one claim of a job can win.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta

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
    resent: list[str] = field(default_factory=list)


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
            if not repository.take_back_lapsed(session, job_id, QUEUED, enqueued_at=utcnow()):
                continue
        # Enqueued after the commit, so the worker that takes it sees it queued.
        queue.enqueue_training(job_id, job_queue)
        report.requeued.append(job_id)
    if report.requeued or report.failed:
        log.warning("lapsed leases: requeued %s, failed %s", report.requeued, report.failed)
    return report


def resend_lost_messages(
    session_factory: sessionmaker[Session], queue: JobQueue, settings: Settings
) -> list[str]:
    """Send again the messages of jobs queued too long; the ids sent."""
    before = utcnow() - timedelta(seconds=settings.requeue_after_seconds)
    stale: dict[str, list[str]] = defaultdict(list)
    with transaction(session_factory) as session:
        for job in repository.unsent_since(session, before):
            stale[job.queue].append(job.id)
        queued = {name: repository.count_queued(session, name) for name in stale}
    resent: list[str] = []
    for name, job_ids in stale.items():
        pending = queue.pending(name)
        # As many messages as queued jobs: none is lost, they wait behind running jobs. A
        # broker that can't say gets the messages again.
        if pending is not None and pending >= queued[name]:
            continue
        with transaction(session_factory) as session:
            mine = [job_id for job_id in job_ids if repository.mark_resent(session, job_id, before)]
        for job_id in mine:
            queue.enqueue_training(job_id, name)
        resent.extend(mine)
    if resent:
        log.warning("queued jobs with no message: sent again %s", resent)
    return resent


def reconcile(
    session_factory: sessionmaker[Session], queue: JobQueue, settings: Settings
) -> ReconcileReport:
    """One pass: lapsed leases first (they requeue jobs), then lost messages."""
    report = reconcile_lapsed_leases(session_factory, queue, settings)
    report.resent = resend_lost_messages(session_factory, queue, settings)
    return report


class Reconciler(threading.Thread):
    """Runs `reconcile` every half lease, in a worker process."""

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
                reconcile(self.session_factory, self.queue, self.settings)
            except Exception:
                log.warning("reconciling jobs failed; trying again", exc_info=True)

    def stop(self) -> None:
        self._stopped.set()
