from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ColumnOut(BaseModel):
    name: str
    type: str
    dtype: str
    missing: int


class DatasetOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    source_format: str
    size_bytes: int
    sha256: str
    kind: Literal["table", "arrays"]
    rows: int
    columns: list[ColumnOut]
    arrays: dict[str, Any] | None = None
    created_at: datetime


class HistogramOut(BaseModel):
    edges: list[float]
    counts: list[int]


class NumericStatsOut(BaseModel):
    min: float
    max: float
    mean: float
    std: float = Field(description="Sample standard deviation (ddof=1)")
    quantiles: dict[str, float] = Field(description="p5, p25, p50, p75, p95")
    histogram: HistogramOut


class DatetimeStatsOut(BaseModel):
    min: str
    max: str


class ValueCountOut(BaseModel):
    value: bool | int | float | str
    count: int


class ColumnProfileOut(BaseModel):
    name: str
    type: Literal["numeric", "categorical", "boolean", "text", "datetime"]
    dtype: str
    missing: int = Field(description="Missing values (and, in numeric columns, NaN or infinity)")
    unique: int = Field(description="Distinct values, missing ones not counted")
    numeric: NumericStatsOut | None = None
    datetime: DatetimeStatsOut | None = None
    top_values: list[ValueCountOut] | None = Field(
        default=None, description="Categorical and boolean columns: the 20 most frequent values"
    )


class ProfileWarningOut(BaseModel):
    column: str | None
    code: Literal["constant", "high_cardinality", "many_missing", "leakage_suspect"]
    message: str


class FeatureScoreOut(BaseModel):
    column: str
    method: Literal["pearson", "mutual_information"]
    score: float | None = Field(
        description="Pearson correlation (numeric feature, numeric target) or mutual "
        "information normalised to [0, 1]; null when it cannot be estimated"
    )


class TargetProfileOut(BaseModel):
    column: str
    task: Literal["classification", "regression"]
    sample_rows: int = Field(description="Rows the feature scores were estimated on")
    classes: list[ValueCountOut] | None = None
    distribution: NumericStatsOut | None = None
    features: list[FeatureScoreOut]
    warnings: list[ProfileWarningOut]


class DatasetProfileOut(BaseModel):
    dataset_id: str
    rows: int
    duplicate_rows: int
    columns: list[ColumnProfileOut]
    warnings: list[ProfileWarningOut]
    target: TargetProfileOut | None = None
