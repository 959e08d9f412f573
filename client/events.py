"""Server-Sent Events of `GET .../events`, parsed line by line (so the sync and the async
client read a stream the same way)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Event:
    """One Server-Sent Event of `GET .../events`: `type` is progress, warning, status, log,
    trial or end; `id` what to resume after."""

    id: str | None
    type: str
    data: Any


class EventParser:
    """Feed it a stream's lines one at a time; it answers an Event at each blank line that
    ends one (comments, such as pings, are skipped)."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.id: str | None = None
        self.type = "message"
        self.data: list[str] = []

    def feed(self, line: str) -> Event | None:
        if line == "":
            event = None
            if self.data:
                event = Event(self.id, self.type, json.loads("\n".join(self.data)))
            self._reset()
            return event
        if line.startswith(":"):
            return None
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "id":
            self.id = value
        elif field == "event":
            self.type = value
        elif field == "data":
            self.data.append(value)
        return None


def parse_events(lines: Iterable[str]) -> Iterator[Event]:
    """Events from the lines of a `text/event-stream` body."""
    parser = EventParser()
    for line in lines:
        event = parser.feed(line)
        if event is not None:
            yield event
