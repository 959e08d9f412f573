"""Request-scoped dependencies: a route's signature reads as its needs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Header, Request
from sqlalchemy.orm import Session

from service.core.events import LAST_EVENT_ID, EventBus, Watch
from service.core.leases import CANCELLED, FINISHED, LeasedColumns, status_snapshot
from service.core.queue import JobQueue
from service.core.settings import Settings
from service.core.store import Store


def get_session(request: Request) -> Iterator[Session]:
    """One session per request, committed when the route returns, then the after-commit
    actions run (enqueueing), so a worker never reads a row that is not there yet."""
    with request.app.state.session_factory() as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        for action in session.info.pop("after_commit", []):
            action()


def after_commit(session: Session, action: Callable[[], None]) -> None:
    session.info.setdefault("after_commit", []).append(action)


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_store(request: Request) -> Store:
    return request.app.state.store


def get_queue(request: Request) -> JobQueue:
    return request.app.state.queue


def get_events(request: Request) -> EventBus:
    return request.app.state.events


def open_watch(
    request: Request,
    session: Session,
    topic: str,
    snapshot: dict,
    ended: bool,
    last_event_id: str | None,
) -> Watch:
    """One watcher's stream, from the one database read its route made: the session's
    connection goes back to the pool now, not when the stream ends hours later."""
    bus: EventBus = request.app.state.events
    if last_event_id is not None:
        last_event_id = bus.check_id(last_event_id)
    session.commit()
    return Watch(
        bus=bus,
        topic=topic,
        snapshot=snapshot,
        ended=ended,
        last_event_id=last_event_id,
        ping_seconds=request.app.state.settings.events_ping_seconds,
    )


def watch_run(
    request: Request,
    session: Session,
    row: LeasedColumns,
    topic: str,
    last_event_id: str | None,
    snapshot: dict | None = None,
) -> Watch:
    """The stream of one run of leased work (a job, a batch, an evaluation): its status
    snapshot, or the route's own `snapshot`, already ended if the run has."""
    snapshot = status_snapshot(row) if snapshot is None else snapshot
    return open_watch(request, session, topic, snapshot, row.status in FINISHED, last_event_id)


def end_stream_if_cancelled(
    session: Session, events: EventBus, row: LeasedColumns, topic: str
) -> None:
    """A queued run that a cancel ended here, not on a worker: its watchers hear it from
    the API, once the cancel is committed."""
    if row.status == CANCELLED:
        after_commit(session, lambda: events.end(topic, CANCELLED))


# scope="function": commit before the response is sent, so a client that reads right after a
# write sees it.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[Store, Depends(get_store)]
QueueDep = Annotated[JobQueue, Depends(get_queue)]
EventsDep = Annotated[EventBus, Depends(get_events)]
LastEventIdHeader = Annotated[
    str | None,
    Header(
        alias=LAST_EVENT_ID,
        max_length=64,
        description="Resume after this event (the `id:` of the last one received)",
    ),
]
