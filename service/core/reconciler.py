"""The database is the source of truth: leased work whose worker vanished, or whose message
the broker lost, goes back to the queue. Every kind of leased work (service/core/leases.py) is
treated alike; the worker names the kinds it runs.

A worker that is killed (SIGKILL, OOM, a lost machine) stops renewing its lease. Once the
lease lapses the row is queued again and the next worker runs it (a job resumes from its
latest checkpoint; a batch prediction starts over and rewrites its result whole); after
`max_attempts` claims it fails instead, so work that kills every worker cannot loop forever.

A broker that restarts without its data (or a send that failed after the commit) leaves
`queued` rows with no message. A row queued for `requeue_after_seconds` since its last send is
sent again when its queue holds fewer messages than it has queued rows; a duplicate message
is harmless, since only one claim of a row can win.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from service.core.database import transaction, utcnow
from service.core.events import STATUS, EventBus, create_event_bus
from service.core.leases import FAILED, QUEUED, LeasedWorkRepository
from service.core.queue import JobQueue
from service.core.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LeasedWork:
    """A kind of leased row the reconciler looks after: its queries, and the task its
    wake-up message names."""

    repository: LeasedWorkRepository[Any]
    task: str
    # The row's live-events topic (service/core/events.py): a watcher hears it requeued or
    # given up on.
    topic: Callable[[str], str] | None = None

    def send(self, queue: JobQueue, row_id: str, queue_name: str) -> None:
        queue.enqueue(self.task, row_id, queue_name)


@dataclass
class ReconcileReport:
    """Ids (of every kind of work alike) each pass acted on."""

    requeued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    resent: list[str] = field(default_factory=list)


def reconcile_lapsed_leases(
    work_kinds: Sequence[LeasedWork],
    session_factory: sessionmaker[Session],
    queue: JobQueue,
    settings: Settings,
    events: EventBus | None = None,
) -> ReconcileReport:
    """Queue again (or fail, past `max_attempts`) every row whose lease lapsed."""
    report = ReconcileReport()
    events = events or create_event_bus(settings)
    for work in work_kinds:
        _take_back_lapsed(work, session_factory, queue, settings, report, events)
    if report.requeued or report.failed:
        log.warning("lapsed leases: requeued %s, failed %s", report.requeued, report.failed)
    return report


def _take_back_lapsed(
    work: LeasedWork,
    session_factory: sessionmaker[Session],
    queue: JobQueue,
    settings: Settings,
    report: ReconcileReport,
    events: EventBus,
) -> None:
    with transaction(session_factory) as session:
        lapsed = [(row.id, row.attempts, row.queue) for row in work.repository.lapsed(session)]
    for row_id, attempts, row_queue in lapsed:
        with transaction(session_factory) as session:
            if attempts >= settings.max_attempts:
                message = (
                    f"the {work.repository.noun}'s worker stopped responding {attempts} times "
                    f"(killed or lost); gave up after {settings.max_attempts} attempts"
                )
                if work.repository.take_back_lapsed(
                    session,
                    row_id,
                    FAILED,
                    error_code="worker_lost",
                    error_message=message,
                    finished_at=utcnow(),
                ):
                    report.failed.append(row_id)
                    if work.topic is not None:
                        events.end(work.topic(row_id), FAILED, message)
                continue
            if not work.repository.take_back_lapsed(session, row_id, QUEUED, enqueued_at=utcnow()):
                continue
        # Sent after the commit, so the worker that takes it sees it queued.
        work.send(queue, row_id, row_queue)
        report.requeued.append(row_id)
        if work.topic is not None:
            events.publish(work.topic(row_id), STATUS, {"status": QUEUED})


def resend_lost_messages(
    work_kinds: Sequence[LeasedWork],
    session_factory: sessionmaker[Session],
    queue: JobQueue,
    settings: Settings,
) -> list[str]:
    """Send again the messages of rows queued too long; the ids sent."""
    before = utcnow() - timedelta(seconds=settings.requeue_after_seconds)
    stale: dict[str, list[tuple[LeasedWork, str]]] = defaultdict(list)
    with transaction(session_factory) as session:
        for work in work_kinds:
            for row in work.repository.unsent_since(session, before):
                stale[row.queue].append((work, row.id))
        # Kinds of work share queues: a queue's messages answer for all of them.
        queued = {
            name: sum(work.repository.count_queued(session, name) for work in work_kinds)
            for name in stale
        }
    resent: list[str] = []
    for name, rows in stale.items():
        pending = queue.pending(name)
        # As many messages as queued rows: none is lost, they wait behind running work. A
        # broker that can't say gets the messages again.
        if pending is not None and pending >= queued[name]:
            continue
        with transaction(session_factory) as session:
            mine = [
                (work, row_id)
                for work, row_id in rows
                if work.repository.mark_resent(session, row_id, before)
            ]
        for work, row_id in mine:
            work.send(queue, row_id, name)
        resent.extend(row_id for _, row_id in mine)
    if resent:
        log.warning("queued work with no message: sent again %s", resent)
    return resent


def reconcile(
    work_kinds: Sequence[LeasedWork],
    session_factory: sessionmaker[Session],
    queue: JobQueue,
    settings: Settings,
) -> ReconcileReport:
    """One pass: lapsed leases first (they requeue work), then lost messages."""
    report = reconcile_lapsed_leases(work_kinds, session_factory, queue, settings)
    report.resent = resend_lost_messages(work_kinds, session_factory, queue, settings)
    return report


class Reconciler(threading.Thread):
    """Runs `reconcile` every half lease, in a worker process, then each sweep: work built on
    leased rows (a study over its trial jobs) checks itself for a step a dead worker missed."""

    def __init__(
        self,
        work_kinds: Sequence[LeasedWork],
        session_factory: sessionmaker[Session],
        queue: JobQueue,
        settings: Settings,
        sweeps: Sequence[Callable[[], object]] = (),
    ) -> None:
        super().__init__(name="reconciler", daemon=True)
        self.work_kinds = work_kinds
        self.sweeps = sweeps
        self.session_factory = session_factory
        self.queue = queue
        self.settings = settings
        self._stopped = threading.Event()

    def run(self) -> None:
        while not self._stopped.wait(max(1.0, self.settings.lease_seconds / 2)):
            try:
                reconcile(self.work_kinds, self.session_factory, self.queue, self.settings)
                for sweep in self.sweeps:
                    sweep()
            except Exception:
                log.warning("reconciling leased work failed; trying again", exc_info=True)

    def stop(self) -> None:
        self._stopped.set()
