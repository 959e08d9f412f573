"""One run of leased work on a worker: claim the row, keep its lease alive while working, and
end it as succeeded, failed or cancelled, or hand it back to the queue when the worker stops.

`LeasedRun` is that life, the same for every kind of work; a kind (a training run, a batch
prediction) says how to load what it needs once claimed and what its work is. Everything a run
writes is fenced by its lease token, so a duplicate delivery does nothing and a worker that
lost its lease changes nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from engine.errors import EngineError
from service.core import metrics
from service.core.database import transaction
from service.core.events import LOG, STATUS, EventBus, create_event_bus
from service.core.leases import CANCELLED, FAILED, QUEUED, RUNNING, LeasedWorkRepository
from service.core.queue import JobQueue
from service.core.settings import Settings
from service.core.store import Store

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class WorkerResources:
    """What a worker process gives every run it makes: built once, on its first task."""

    session_factory: sessionmaker[Session]
    store: Store
    settings: Settings
    worker_id: str
    queue: JobQueue
    # Set when the worker is asked to stop: the running work is handed back, not failed.
    shutdown: threading.Event = field(default_factory=threading.Event)
    # Test hook, off unless set (TRAINYARD_TEST_CRASH_DATASET_NAME on the worker): a job on a
    # dataset of this name kills its worker mid-epoch, for the poison-job test.
    crash_on_dataset: str | None = None
    # Where runs publish their live events; by default the settings' bus.
    events: EventBus = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.events is None:
            self.events = create_event_bus(self.settings)


def retrying_write(
    resources: WorkerResources,
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


class LeaseKeeper(threading.Thread):
    """Renews a run's lease in the background and notices cancel requests, so the work
    itself only ever reads flags."""

    # A cancel is noticed within this many seconds; the lease is renewed every third of it.
    CANCEL_POLL_SECONDS = 1.0

    def __init__(
        self,
        resources: WorkerResources,
        repository: LeasedWorkRepository[Any],
        row_id: str,
        token: str,
    ) -> None:
        super().__init__(name=f"lease-{row_id}", daemon=True)
        self.resources = resources
        self.repository = repository
        self.row_id = row_id
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
                    self.cancel_requested = self.repository.is_cancel_requested(
                        session, self.row_id
                    )
                    if time.monotonic() - renewed_at >= renew_every:
                        if not self.repository.renew(
                            session, self.row_id, self.token, self.lease_seconds
                        ):
                            self.lost = True
                            return
                        renewed_at = time.monotonic()
                        metrics.record_heartbeat(self.resources.worker_id)
            except Exception:
                # A database blip: try again next beat; the lease outlives a few misses.
                log.warning("lease renewal for %s failed", self.row_id, exc_info=True)

    def should_stop(self) -> bool:
        return self.cancel_requested or self.lost or self.resources.shutdown.is_set()

    def stop(self) -> None:
        self._stopped.set()


class WorkStopped(Exception):
    """The work stopped between steps because `LeaseKeeper.should_stop` said so."""


class LeasedRun:
    """The life of one run: `execute` claims the row, then `claimed` loads what the work needs
    (in the claim's transaction), then `work` runs under a kept lease and returns how it
    ended. A stop (cancel, shutdown, lost lease) ends as cancelled, released or lost; an
    engine error fails the run with the engine's code; anything else fails it as an internal
    error."""

    # Set by each kind of work.
    repository: ClassVar[LeasedWorkRepository[Any]]
    task: ClassVar[str]
    # The events topic of a row (service/core/events.py), as a staticmethod.
    topic_of: ClassVar[Callable[[str], str]]
    # Exceptions of the work that mean "stopped because should_stop said so".
    stop_exceptions: ClassVar[tuple[type[Exception], ...]] = (WorkStopped,)

    def __init__(self, resources: WorkerResources, row_id: str) -> None:
        self.resources = resources
        self.store = resources.store
        self.settings = resources.settings
        self.row_id = row_id
        self.token = ""
        self.row: Any = None
        self.keeper: LeaseKeeper | None = None

    def claimed(self, session: Session) -> bool:
        """Load what the work needs beside the row; False if it is gone (nothing to do)."""
        return True

    def work(self) -> str:
        """The work itself: what happened (`succeeded`, or `lost` when a fenced write found
        the lease gone)."""
        raise NotImplementedError

    def before_stop(self) -> None:
        """What to save before a stopped run ends or goes back to the queue."""

    def stop_details(self) -> dict[str, Any]:
        """The error code and message a run stopped for its own reason ends with (a pruned
        study trial); none for a cancel the user asked for."""
        return {}

    def execute(self) -> str:
        """Run the row if this worker can claim it; returns what happened."""
        noun = self.repository.noun
        with transaction(self.resources.session_factory) as session:
            token = self.repository.claim(
                session, self.row_id, self.resources.worker_id, self.settings.lease_seconds
            )
            self.row = self.repository.get_any(session, self.row_id) if token else None
            ready = self.row is not None and self.claimed(session)
        if token is None or not ready:
            log.info("%s %s not claimed: finished or held by another worker", noun, self.row_id)
            return "skipped"
        self.token = token
        metrics.record_heartbeat(self.resources.worker_id)
        self.publish(STATUS, {"status": RUNNING})
        self.publish(
            LOG, {"message": f"attempt {self.row.attempts} on worker {self.resources.worker_id}"}
        )
        self.keeper = LeaseKeeper(self.resources, self.repository, self.row_id, token)
        self.keeper.start()
        try:
            return self.work()
        except self.stop_exceptions:
            return self._stopped()
        except EngineError as exc:
            self.finish(FAILED, error_code=exc.code, error_message=exc.message)
            return FAILED
        except Exception as exc:
            log.exception("%s %s failed", noun, self.row_id)
            message = f"{type(exc).__name__}: {exc}"
            self.finish(FAILED, error_code="internal_error", error_message=message)
            return FAILED
        finally:
            self.keeper.stop()

    def should_stop(self) -> bool:
        assert self.keeper is not None
        return self.keeper.should_stop()

    @property
    def lost(self) -> bool:
        return self.keeper is not None and self.keeper.lost

    def lose_lease(self) -> None:
        """A fenced write found the lease gone: stop at the next check, write nothing more."""
        assert self.keeper is not None
        self.keeper.lost = True

    def write(self, write: Callable[[Session], bool], also_retry: tuple = ()) -> bool:
        """A fenced write, retried through database blips; a lost lease stops the run."""
        done = retrying_write(self.resources, write, also_retry=also_retry)
        if not done:
            self.lose_lease()
        return done

    def finish(self, status: str, **values: Any) -> bool:
        done = self.write(
            lambda session: self.repository.finish(
                session, self.row_id, self.token, status, **values
            )
        )
        if done:
            self.ended(status, values.get("error_message"))
        return done

    def publish(self, event_type: str, data: dict[str, Any]) -> None:
        """A live event on the row's topic (dropped, never raised, if the bus is down)."""
        self.resources.events.publish(self.topic_of(self.row_id), event_type, data)

    def ended(self, status: str, error: str | None = None) -> None:
        """The row's end is committed: its watchers hear it and their streams close."""
        self.resources.events.end(self.topic_of(self.row_id), status, error)

    def _stopped(self) -> str:
        assert self.keeper is not None
        if self.keeper.lost:
            return "lost"
        self.before_stop()
        if self.keeper.lost:
            return "lost"
        stopping_itself = bool(self.stop_details())
        if (
            self.resources.shutdown.is_set()
            and not self.keeper.cancel_requested
            and not stopping_itself
        ):
            return self.hand_back("worker stopping: handed back to the queue")
        self.finish(CANCELLED, **self.stop_details())
        return CANCELLED

    def hand_back(self, message: str) -> str:
        """Give the row back to the queue, to be claimed again (`released`)."""
        if self.write(lambda session: self.repository.release(session, self.row_id, self.token)):
            self.publish(STATUS, {"status": QUEUED})
            self.publish(LOG, {"message": message})
            self.resources.queue.enqueue(self.task, self.row_id, self.row.queue)
        return "released"
