"""The `training` section of a spec: loss, optimizer, schedule, batches, stopping."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from engine.spec_model import SpecModel

Optimizer = Literal["sgd", "adam", "adamw", "rmsprop", "adagrad"]
Device = Literal["auto", "cpu", "cuda"]


class EarlyStopping(SpecModel):
    patience: int = Field(default=10, ge=1)
    min_delta: float = Field(default=0.0, ge=0.0)


class TrainingConfig(SpecModel):
    epochs: int = Field(default=100, ge=1)
    # 1 = stochastic gradient descent, n = mini-batch, "full" = batch gradient descent.
    batch_size: Annotated[int, Field(ge=1)] | Literal["full"] = 32
    optimizer: Optimizer = "adam"
    learning_rate: float = Field(default=1e-3, gt=0.0, le=100.0)
    momentum: float = Field(default=0.0, ge=0.0, lt=1.0)
    nesterov: bool = False
    weight_decay: float = Field(default=0.0, ge=0.0)
    gradient_clip_norm: float | None = Field(default=None, gt=0.0)
    early_stopping: EarlyStopping | None = Field(default_factory=EarlyStopping)
    device: Device = "auto"

    @model_validator(mode="after")
    def _nesterov_needs_momentum(self) -> TrainingConfig:
        if self.nesterov and (self.optimizer != "sgd" or self.momentum == 0.0):
            raise ValueError("nesterov needs optimizer 'sgd' with momentum > 0")
        return self
