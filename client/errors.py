"""The API's refusals as exceptions: `{"error": {"code", "message", "details"}}` with the
status, one subclass per status family so callers catch what they mean
(`except NotFound`, `except Conflict`), all of them `ApiError`."""

from __future__ import annotations

from typing import Any

import httpx


class ApiError(Exception):
    """The service answered with an error status. `status`, `code` (e.g. `not_found`),
    `message` and `details` (for a 422, a list of `{"field", "message"}`) are the API's."""

    def __init__(self, status: int, body: Any, headers: httpx.Headers | None = None) -> None:
        error = body.get("error", {}) if isinstance(body, dict) else {}
        if not isinstance(error, dict):
            error = {}
        self.status = status
        self.code: str | None = error.get("code")
        self.message: str | None = error.get("message")
        self.details: Any = error.get("details")
        self.body = body
        self.headers = headers or httpx.Headers()
        super().__init__(f"{status} {self.code}: {self.message}")


class BadRequest(ApiError):
    """400: the request could not be read."""


class Unauthorized(ApiError):
    """401: no key, an unknown key or a revoked one."""


class Forbidden(ApiError):
    """403: the key may not do this (a project's key on an admin route)."""


class NotFound(ApiError):
    """404: no such resource in this project."""


class Conflict(ApiError):
    """409: the resource's state refuses it (a result not ready, a name taken)."""


class PayloadTooLarge(ApiError):
    """413: an upload or a request over the service's limits."""


class ValidationError(ApiError):
    """422: `details` names each field and the reason."""


class RateLimited(ApiError):
    """429: too many requests for this key; `retry_after` is the seconds the service asked
    to wait (None if it did not say)."""

    @property
    def retry_after(self) -> float | None:
        return retry_after_seconds(self.headers)


class ServerError(ApiError):
    """5xx: the service failed."""


class ServiceUnavailable(ServerError):
    """503: the service, or what it depends on, is not ready now."""


BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: ValidationError,
    429: RateLimited,
    503: ServiceUnavailable,
}


def error_from_response(response: httpx.Response) -> ApiError:
    """The exception for an error response (its body read already)."""
    try:
        body: Any = response.json()
    except ValueError:
        body = {"error": {"code": "http_error", "message": response.text[:500]}}
    status = response.status_code
    kind = BY_STATUS.get(status) or (ServerError if status >= 500 else ApiError)
    return kind(status, body, response.headers)


def retry_after_seconds(headers: httpx.Headers) -> float | None:
    """`Retry-After` in seconds (the service sends whole seconds; an HTTP date is ignored)."""
    value = headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
