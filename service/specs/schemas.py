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


class RBMOut(BaseModel):
    layer: str = Field(description="The row of the dense layer this RBM initialises.")
    visible_units: int
    hidden_units: int
    visible_type: str | None = Field(
        description="gaussian or bernoulli; null: chosen from the preprocessed training "
        "inputs when the job runs (bernoulli when all lie in [0, 1], else gaussian)."
    )
    parameters: int = Field(description="Weights, hidden and visible biases.")


class PretrainingOut(BaseModel):
    """DBN pretraining: one RBM per hidden layer, trained in order before fine-tuning; its
    `total_epochs` are the job's first epochs."""

    method: str
    epochs: int = Field(description="Per RBM.")
    total_epochs: int
    cd_k: int
    persistent: bool
    learning_rate: float | None
    rbms: list[RBMOut]


class SpecCheckOut(BaseModel):
    """The model the spec builds on the dataset: per-layer output shapes (without the batch
    axis) and parameter counts, from a forward pass on zeros."""

    input_shape: list[int]
    output_shape: list[int]
    parameters: int
    layers: list[LayerOut]
    model: dict[str, Any]
    pretraining: PretrainingOut | None = Field(
        default=None, description="With model.pretrain: the RBMs; null otherwise."
    )
