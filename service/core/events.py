"""The live view of leased work: workers (and the API, for what it ends itself) publish events
on a topic per row (`job:<id>`, `batch:<id>`, `evaluation:<id>`, `study:<id>`);
`GET .../events` streams them as Server-Sent Events. The database stays the record; this is
only what happens as it happens.

Each topic is a bounded, ordered log, not fire-and-forget pub/sub, so an event id is a place
in it and a reconnect with `Last-Event-ID` goes on after exactly that event:

- Redis (production): a stream per topic under `broker_key_prefix`; XADD with an approximate
  MAXLEN, XREAD BLOCK from the last id; ids are the stream's ids. A topic expires a day after
  its work ends.
- Embedded default: an append-only JSON-lines file per topic under `<data_dir>/events/`; an
  event's id is the byte offset just past its line, so a resume is one seek. Each event is
  one `write` of one line on a file opened for appending under an exclusive `flock`, so two
  processes (a worker and the API) never interleave; readers take complete lines only and
  look for more every `FILE_POLL_SECONDS`. Files of ended work are swept after a day.

Publishing never breaks or slows the work: a failure is logged and the event dropped, and
after a Redis failure publishing pauses for a few seconds instead of waiting on every epoch.
Watchers read the bus, never the database, so any number of them cost the database nothing.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aioredis
from fastapi.sse import ServerSentEvent

from service.core.errors import InvalidInput, invalid_field
from service.core.settings import Settings

log = logging.getLogger(__name__)

# Event types.
PROGRESS, WARNING, STATUS, LOG, TRIAL, END = "progress", "warning", "status", "log", "trial", "end"
# Events a topic keeps (Redis trims approximately, to about this many).
MAX_EVENTS = 5000
# How long a topic stays readable after its work ended.
ENDED_TOPIC_SECONDS = 24 * 3600
# After a failed publish, events are dropped for this long rather than each waiting out a
# timeout of its own.
PAUSE_AFTER_FAILURE_SECONDS = 5.0
FILE_POLL_SECONDS = 0.1
LAST_EVENT_ID = "Last-Event-ID"


def job_topic(job_id: str) -> str:
    return f"job:{job_id}"


def batch_topic(batch_id: str) -> str:
    return f"batch:{batch_id}"


def evaluation_topic(evaluation_id: str) -> str:
    return f"evaluation:{evaluation_id}"


def study_topic(study_id: str) -> str:
    return f"study:{study_id}"


@dataclass(frozen=True)
class Event:
    id: str
    type: str
    data: dict[str, Any]


class EventBus:
    """Publish events to a topic's log and read them back after an id. `publish` and `end`
    are for any thread (workers, API routes); `position` and `read` for the event loop."""

    # The id "before the first event": reading after it reads the whole log.
    start_id = "0"

    def __init__(self) -> None:
        self._paused_until = 0.0

    def publish(self, topic: str, type: str, data: dict[str, Any]) -> None:
        if time.monotonic() < self._paused_until:
            return
        try:
            self._append(topic, type, data)
        except Exception:
            self._paused_until = time.monotonic() + PAUSE_AFTER_FAILURE_SECONDS
            log.warning("event %s on %s dropped", type, topic, exc_info=True)

    def end(self, topic: str, status: str, error: str | None = None) -> None:
        """The work ended: its last status, then `end`; the topic expires later."""
        status_data: dict[str, Any] = {"status": status}
        if error:
            status_data["error"] = error
        self.publish(topic, STATUS, status_data)
        self.publish(topic, END, {"status": status})
        try:
            self._expire(topic)
        except Exception:
            log.warning("could not set the expiry of %s", topic, exc_info=True)

    def check_id(self, value: str) -> str:
        """A `Last-Event-ID` this bus could have given; a 422 naming the header if not."""
        raise NotImplementedError

    async def position(self, topic: str) -> str:
        """The id of the topic's latest event (`start_id` when it has none)."""
        raise NotImplementedError

    async def read(self, topic: str, after: str, timeout: float) -> list[Event]:
        """The events after id `after`, waiting up to `timeout` seconds for the first."""
        raise NotImplementedError

    async def aclose(self) -> None:
        """Let go of what one watcher's reads held."""

    def _append(self, topic: str, type: str, data: dict[str, Any]) -> None:
        raise NotImplementedError

    def _expire(self, topic: str) -> None:
        raise NotImplementedError

    def watcher(self) -> EventBus:
        """A bus for one watcher's reads (Redis: a connection of its own, on its loop)."""
        return self


class RedisEventBus(EventBus):
    start_id = "0-0"
    _ID = re.compile(r"^\d{1,20}-\d{1,20}$")

    def __init__(self, url: str, prefix: str) -> None:
        super().__init__()
        self.url = url
        self.prefix = prefix
        self._client: redis.Redis | None = None
        self._reader: aioredis.Redis | None = None

    def key(self, topic: str) -> str:
        return f"{self.prefix}trainyard:events:{topic}"

    @property
    def client(self) -> redis.Redis:
        if self._client is None:
            self._client = redis.Redis.from_url(
                self.url, socket_timeout=1.0, socket_connect_timeout=1.0
            )
        return self._client

    def _append(self, topic: str, type: str, data: dict[str, Any]) -> None:
        fields = {"type": type, "data": json.dumps(data)}
        self.client.xadd(self.key(topic), fields, maxlen=MAX_EVENTS, approximate=True)

    def _expire(self, topic: str) -> None:
        self.client.expire(self.key(topic), ENDED_TOPIC_SECONDS)

    def check_id(self, value: str) -> str:
        if not self._ID.match(value):
            raise _bad_id(value, "a Redis stream id such as 1700000000000-0")
        return value

    def watcher(self) -> RedisEventBus:
        return RedisEventBus(self.url, self.prefix)

    @property
    def reader(self) -> aioredis.Redis:
        if self._reader is None:
            self._reader = aioredis.Redis.from_url(self.url)
        return self._reader

    async def position(self, topic: str) -> str:
        latest = await self.reader.xrevrange(self.key(topic), count=1)
        return latest[0][0].decode() if latest else self.start_id

    async def read(self, topic: str, after: str, timeout: float) -> list[Event]:
        answer = await self.reader.xread(
            {self.key(topic): after}, count=500, block=max(1, int(timeout * 1000))
        )
        events = []
        for _, entries in answer or []:
            for entry_id, fields in entries:
                events.append(
                    Event(entry_id.decode(), fields[b"type"].decode(), json.loads(fields[b"data"]))
                )
        return events

    async def aclose(self) -> None:
        if self._reader is not None:
            await self._reader.aclose()
            self._reader = None


class FileEventBus(EventBus):
    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.folder = folder

    def path(self, topic: str) -> Path:
        # Topics are built from ids the service made ("job:job_<hex>"), never from user input.
        return self.folder / f"{topic.replace(':', '-')}.jsonl"

    def _append(self, topic: str, type: str, data: dict[str, Any]) -> None:
        line = json.dumps({"type": type, "data": data}, separators=(",", ":")) + "\n"
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path(topic), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, line.encode())
        finally:
            os.close(fd)

    def _expire(self, topic: str) -> None:
        self.sweep()

    def sweep(self, older_than: float = ENDED_TOPIC_SECONDS) -> list[Path]:
        """Delete the topics nothing was written to for `older_than` seconds."""
        before = time.time() - older_than
        swept = []
        for path in self.folder.glob("*.jsonl"):
            try:
                if path.stat().st_mtime < before:
                    path.unlink()
                    swept.append(path)
            except FileNotFoundError:
                pass
        return swept

    def check_id(self, value: str) -> str:
        if not value.isdigit() or len(value) > 18:
            raise _bad_id(value, "a byte offset such as 1024")
        return value

    async def position(self, topic: str) -> str:
        try:
            size = self.path(topic).stat().st_size
        except FileNotFoundError:
            return self.start_id
        # The end of the last complete line: a line being written is not there yet.
        with self.path(topic).open("rb") as file:
            file.seek(max(0, size - 1))
            if size == 0 or file.read(1) == b"\n":
                return str(size)
        events = self._read_from(topic, 0)
        return events[-1].id if events else self.start_id

    async def read(self, topic: str, after: str, timeout: float) -> list[Event]:
        deadline = time.monotonic() + timeout
        offset = int(after)
        while True:
            events = self._read_from(topic, offset)
            if events or time.monotonic() >= deadline:
                return events
            await asyncio.sleep(FILE_POLL_SECONDS)

    def _read_from(self, topic: str, offset: int) -> list[Event]:
        try:
            with self.path(topic).open("rb") as file:
                file.seek(offset)
                chunk = file.read()
        except FileNotFoundError:
            return []
        events = []
        for line in chunk.splitlines(keepends=True):
            if not line.endswith(b"\n"):
                break
            offset += len(line)
            record = json.loads(line)
            events.append(Event(str(offset), record["type"], record["data"]))
        return events


def _bad_id(value: str, expected: str) -> InvalidInput:
    return invalid_field(
        LAST_EVENT_ID, f"{value[:40]!r} is not an id this stream gave; expected {expected}"
    )


def create_event_bus(settings: Settings) -> EventBus:
    if settings.uses_embedded_broker:
        return FileEventBus(settings.resolved_data_dir / "events")
    return RedisEventBus(settings.effective_broker_url, settings.broker_key_prefix)


@dataclass
class Watch:
    """One watcher's stream of a topic, decided at connect from one database read: the row's
    status now (`snapshot`), whether it has ended, and the `Last-Event-ID` it resumes after."""

    bus: EventBus
    topic: str
    snapshot: dict[str, Any]
    ended: bool
    last_event_id: str | None
    ping_seconds: float

    async def events(self) -> AsyncIterator[Event | None]:
        """Events to send, in order; None for a keep-alive ping. Ends after `end`."""
        bus = self.bus.watcher()
        try:
            async for event in self._events(bus):
                yield event
        finally:
            await bus.aclose()

    async def _events(self, bus: EventBus) -> AsyncIterator[Event | None]:
        if self.last_event_id is None:
            # The snapshot carries the log's position: what follows is everything after it.
            cursor = await bus.position(self.topic)
            yield Event(cursor, STATUS, self.snapshot)
            if self.ended:
                yield Event(cursor, END, {"status": self.snapshot["status"]})
                return
        else:
            cursor = self.last_event_id
        while True:
            timeout = 0.0 if self.ended else self.ping_seconds
            events = await bus.read(self.topic, cursor, timeout)
            for event in events:
                yield event
                if event.type == END:
                    return
            if events:
                cursor = events[-1].id
            elif self.ended:
                # Ended before this watcher came back, its `end` already read or expired.
                yield Event(cursor, END, {"status": self.snapshot["status"]})
                return
            else:
                yield None


async def server_sent_events(watch: Watch) -> AsyncIterator[ServerSentEvent]:
    """A watch as Server-Sent Events: `event:` the type, `id:` its place in the log, `data:`
    its JSON; a ping is a comment line."""
    async for event in watch.events():
        if event is None:
            yield ServerSentEvent(comment="ping")
        else:
            yield ServerSentEvent(id=event.id, event=event.type, data=event.data)
