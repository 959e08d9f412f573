"""Schemas shared by every domain: the error body and a page of results."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field


class ErrorDetail(BaseModel):
    code: str = Field(examples=["invalid_input"])
    message: str
    details: Any = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses a route can answer."""
    return {status: {"model": ErrorResponse} for status in statuses}


def stream_error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The same, for a route whose success is a stream (`text/event-stream`): its errors are
    still JSON, which `model` alone would document under the stream's media type."""
    schema = {"$ref": "#/components/schemas/ErrorResponse"}
    return {
        status: {"description": "Error", "content": {"application/json": {"schema": schema}}}
        for status in (401, 422, *statuses)
    }
