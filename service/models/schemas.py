from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from engine.explain import DEFAULT_STEPS as EXPLAIN_DEFAULT_STEPS
from engine.explain import MAX_INSTANCES as EXPLAIN_MAX_INSTANCES
from engine.explain import MAX_STEPS as EXPLAIN_MAX_STEPS
from engine.generation import MAX_SAMPLES


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


class ExplainRequest(BaseModel):
    """Raw instances as predict takes them, and what to explain."""

    model_config = ConfigDict(extra="forbid")

    instances: list[Any] = Field(
        min_length=1,
        max_length=EXPLAIN_MAX_INSTANCES,
        description="Raw rows (tables), arrays (images, sequences, vectors) or windows of rows "
        "(forecasting), as predict takes them",
    )
    target: str | int | float | bool | None = Field(
        default=None,
        description="Classification: the class explained (default: each instance's predicted "
        "class). Regression with several outputs and forecasting: the output (forecast step) "
        "explained, 1-based (default 1)",
    )
    n_steps: int = Field(
        default=EXPLAIN_DEFAULT_STEPS,
        ge=2,
        le=EXPLAIN_MAX_STEPS,
        description="Integrated-gradients steps from the baseline to each instance",
    )


class Explanation(BaseModel):
    prediction: Prediction
    target: Any = Field(description="The class (or 1-based output) whose output is explained")
    attributions: dict[str, float] | list[float] | list[list[float]] = Field(
        description="Tables: raw column -> attribution; sequences and forecasting windows: one "
        "per time step, oldest first; vectors: one per position; images: a saliency map [H, W] "
        "(summed over channels)"
    )
    channels: list[str] | None = Field(
        default=None, description="Forecasting: the channel names of `per_channel`"
    )
    per_channel: list[list[float]] | None = Field(
        default=None, description="Sequences and forecasting windows: [T, C] attributions"
    )
    convergence_delta: float = Field(
        description="How far the attributions' sum is from output(instance) - output(baseline)"
    )


class ExplainResponse(BaseModel):
    model_id: str
    method: str = Field(description="integrated_gradients (captum)")
    n_steps: int
    baseline: str = Field(description="What the attributions are measured from")
    explanations: list[Explanation]


class SampleRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    n: int = Field(default=10, ge=1, le=MAX_SAMPLES, description="Examples to make")
    seed: int | None = Field(
        default=None,
        ge=0,
        le=2**32 - 1,
        description="The same seed (with the same n and label) makes the same examples; "
        "default: a fresh one, given back in the answer",
    )
    label: str | int | float | bool | None = Field(
        default=None,
        description="A conditional GAN's class for every example; default: classes drawn "
        "as often as in the training rows",
    )


class GeneratedImage(BaseModel):
    png: str = Field(description="A PNG image, base64")
    label: Any = None


class SampleResponse(BaseModel):
    model_id: str
    kind: str = Field(description="rows (a table model) or images")
    n: int
    seed: int
    label: Any = None
    rows: list[dict[str, Any]] | None = Field(
        default=None,
        description="Rows of raw column values, as the training data holds them (with the "
        "target column for a conditional model)",
    )
    images: list[GeneratedImage] | None = None
