"""Schemas shared by every domain: the error body, a page of results, and a model's scores on
held-out rows (a job's test report, an evaluation's report)."""

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


class ConfusionMatrix(BaseModel):
    labels: list[Any] = Field(description="The class labels, in the matrix's row/column order.")
    matrix: list[list[int]] = Field(description="Rows: the true class; columns: the predicted.")


class HorizonErrors(BaseModel):
    step: int = Field(description="Steps ahead: 1 is the next value.")
    mae: float
    rmse: float


class Evaluation(BaseModel):
    rows: int = Field(description="Rows scored.")
    metrics: dict[str, float] = Field(
        description="classification: accuracy, balanced_accuracy, precision_macro, "
        "recall_macro, f1_macro, roc_auc; regression and forecasting: mae, rmse, r2 (target "
        "units); reconstruction: reconstruction_error."
    )
    confusion_matrix: ConfusionMatrix | None = None
    per_horizon: list[HorizonErrors] | None = Field(
        default=None, description="Forecasting: the errors of each step ahead."
    )
    notes: list[str] = Field(default_factory=list, description="Metrics left out, and why.")


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
