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
    instances: list[dict[str, Any]] = Field(
        min_length=1,
        description="Raw rows with the training columns: un-scaled, un-encoded.",
        examples=[[{"age": 42, "city": "Lyon"}]],
    )


class Prediction(BaseModel):
    label: Any = None
    probabilities: dict[str, float] | None = None
    value: float | None = None


class PredictResponse(BaseModel):
    model_id: str
    predictions: list[Prediction]
