from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ModelOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    version: int
    task: str
    job_id: str
    dataset_id: str
    metrics: dict[str, Any]
    created_at: datetime


class PredictRequest(BaseModel):
    instances: list[Any] = Field(
        min_length=1,
        description="Raw instances shaped like the training data: rows of named columns "
        "(un-scaled, un-encoded); nested arrays for array datasets (an image may also be a "
        "base64 PNG/JPEG string); for forecasting, each instance is a window of past rows.",
        examples=[[{"age": 42, "city": "Lyon"}]],
    )


class Prediction(BaseModel):
    label: Any = None
    probabilities: dict[str, float] | None = None
    value: float | None = None
    values: list[float] | None = Field(default=None, description="Forecast over the horizon")
    anomaly_score: float | None = Field(
        default=None, description="Reconstruction error: higher is more unusual"
    )


class PredictResponse(BaseModel):
    model_id: str
    predictions: list[Prediction]


class EncodeResponse(BaseModel):
    model_id: str
    embeddings: list[list[float]]
