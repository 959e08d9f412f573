from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from service.core.leases import WorkStatus

ResultFormat = Literal["parquet", "csv"]


class BatchPredictionCreate(BaseModel):
    dataset_id: str = Field(min_length=1, max_length=64)
    format: ResultFormat = "parquet"
    id_column: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="A column copied first into the result to join it back; defaults to a "
        "column named `id` when the dataset has one.",
    )


class BatchProgress(BaseModel):
    rows_done: int
    rows_total: int


class BatchError(BaseModel):
    code: str
    message: str


class BatchPredictionOut(BaseModel):
    id: str
    model_id: str = Field(description="The model the reference named at submit time.")
    dataset_id: str
    format: ResultFormat
    id_column: str | None
    status: WorkStatus
    attempts: int
    cancel_requested: bool
    progress: BatchProgress
    error: BatchError | None
    result_url: str | None = Field(description="Where to download the result once succeeded.")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
