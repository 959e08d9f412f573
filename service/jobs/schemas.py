from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from engine.spec import Spec

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class JobCreate(BaseModel):
    dataset_id: str = Field(min_length=1, max_length=64)
    spec: Spec


class Progress(BaseModel):
    epoch: int
    epochs: int
    samples_per_second: float | None = None
    eta_seconds: float | None = None


class JobError(BaseModel):
    code: str
    message: str


class JobWarning(BaseModel):
    code: Literal["vanishing_gradient", "exploding_gradient", "dead_relu", "overfitting"] | str
    epoch: int = Field(description="The epoch the condition began")
    message: str


class JobOut(BaseModel):
    id: str
    dataset_id: str
    status: JobStatus
    queue: str
    attempts: int
    cancel_requested: bool
    progress: Progress | None
    metrics: dict[str, float] | None
    warnings: list[JobWarning]
    model_id: str | None
    error: JobError | None
    spec: dict[str, Any]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class EpochMetrics(BaseModel):
    epoch: int
    values: dict[str, float]


class JobMetricsOut(BaseModel):
    job_id: str
    epochs: list[EpochMetrics]
    warnings: list[JobWarning]
