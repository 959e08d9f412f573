from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from engine.spec import Spec


class SpecCheckRequest(BaseModel):
    dataset_id: str
    spec: Spec
    validation_dataset_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="As on POST /v1/jobs: checked against the training dataset.",
    )
    test_dataset_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="As on POST /v1/jobs: checked against the training dataset.",
    )


class LayerOut(BaseModel):
    name: str
    type: str
    output_shape: list[int]
    parameters: int


class SpecCheckOut(BaseModel):
    """The model the spec builds on the dataset: per-layer output shapes (without the batch
    axis) and parameter counts, from a forward pass on zeros."""

    input_shape: list[int]
    output_shape: list[int]
    parameters: int
    layers: list[LayerOut]
    model: dict[str, Any]
