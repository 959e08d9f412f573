"""Python SDK for the Trainyard API (httpx). Imports nothing from the server packages."""

from client.sdk import ApiError, Client, Event, parse_events

__all__ = ["ApiError", "Client", "Event", "parse_events"]
