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


class ModelNameOut(BaseModel):
    """A registered name: its versions, newest first, and the aliases pointing into them."""

    name: str
    latest_version: int
    versions: int = Field(description="How many versions the name has")
    aliases: dict[str, int] = Field(description="Alias -> the version it points at")
    created_at: datetime = Field(description="When the first version was registered")
    updated_at: datetime = Field(description="When the latest version was registered")


class SpecSummary(BaseModel):
    task: str
    family: str | None = Field(description="Model family the spec names; null: the default")
    features: int | None = Field(
        description="Input columns the spec names; null: every column but the target"
    )


class ModelVersionOut(BaseModel):
    id: str
    name: str
    version: int
    aliases: list[str]
    job_id: str
    dataset_id: str
    test_metrics: dict[str, Any] = Field(description="The job's evaluation on its test split")
    spec: SpecSummary
    created_at: datetime


class AliasRequest(BaseModel):
    version: int = Field(ge=1, le=2**31 - 1, description="The version the alias points at")


class AliasOut(BaseModel):
    name: str
    alias: str
    version: int
    model_id: str
    updated_at: datetime


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
