"""One error hierarchy for the service, turned into `{"error": {...}}` by one set of handlers."""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

T = TypeVar("T")


class TrainyardError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details = details


class InvalidInput(TrainyardError):
    status_code = 422
    code = "invalid_input"


def invalid_field(field: str, reason: str, code: str = "invalid_input") -> InvalidInput:
    """A 422 that names the field and the reason, in the message and in the details."""
    return InvalidInput(
        f"{field}: {reason}", code=code, details=[{"field": field, "reason": reason}]
    )


class Unauthorized(TrainyardError):
    status_code = 401
    code = "unauthorized"


class Forbidden(TrainyardError):
    status_code = 403
    code = "forbidden"


class NotFound(TrainyardError):
    status_code = 404
    code = "not_found"


def found(row: T | None, noun: str, row_id: str) -> T:
    """`row`, or a 404 naming what was looked for (`job 'job_1' not found`)."""
    if row is None:
        raise NotFound(f"{noun} {row_id!r} not found")
    return row


class Conflict(TrainyardError):
    status_code = 409
    code = "conflict"


class TooLarge(TrainyardError):
    status_code = 413
    code = "too_large"


class RateLimited(TrainyardError):
    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, retry_after: str) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


def _field_path(loc: tuple | list) -> str:
    """`("body", "spec", "training", "optimizer")` -> `spec.training.optimizer`."""
    parts = [p for p in loc if p not in ("body", "query", "path", "header")]
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "body"


def validation_details(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    details = []
    for err in errors:
        # A body that is not JSON at all has a location inside the raw text, not a field.
        loc = ("body",) if err.get("type") == "json_invalid" else err.get("loc", ())
        item = {"field": _field_path(loc), "reason": err.get("msg", "")}
        ctx = err.get("ctx") or {}
        if "expected" in ctx:
            item["allowed"] = ctx["expected"]
        details.append(item)
    return details


def error_response(exc: TrainyardError) -> JSONResponse:
    headers = None
    if exc.status_code == 401:
        headers = {"WWW-Authenticate": "Bearer"}
    elif isinstance(exc, RateLimited):
        headers = {"Retry-After": exc.retry_after}
    return JSONResponse(
        error_body(exc.code, exc.message, exc.details), exc.status_code, headers=headers
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(TrainyardError)
    async def _trainyard_error(_: Request, exc: TrainyardError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = validation_details(list(exc.errors()))
        first = details[0] if details else {"field": "body", "reason": "invalid"}
        message = f"{first['field']}: {first['reason']}"
        return JSONResponse(error_body("invalid_input", message, details), 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:
            # FastAPI's answer to a body it cannot decode (bytes that are not UTF-8): bad input,
            # a 422 like malformed JSON, so every route documents one status for it.
            reason = str(exc.detail)
            details = [{"field": "body", "reason": reason}]
            return JSONResponse(error_body("invalid_input", f"body: {reason}", details), 422)
        codes = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized"}
        code = codes.get(exc.status_code, "http_error")
        return JSONResponse(error_body(code, str(exc.detail)), exc.status_code, headers=exc.headers)
