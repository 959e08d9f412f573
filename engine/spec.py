"""The model spec: one pydantic schema for the API, validation and training.

`{"task": "classification", "target": "label"}` alone is a complete spec; every other field
has a default that trains a sound model on a small tabular dataset.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Task = Literal["classification", "regression"]
Activation = Literal["relu", "leaky_relu", "elu", "selu", "gelu", "sigmoid", "tanh"]
Optimizer = Literal["sgd", "adam", "adamw", "rmsprop", "adagrad"]
Device = Literal["auto", "cpu", "cuda"]


class SpecModel(BaseModel):
    # A typo in a field name is a mistake the user wants to hear about, not a silent default.
    model_config = ConfigDict(extra="forbid")


class MLPConfig(SpecModel):
    family: Literal["mlp"] = "mlp"
    hidden: list[Annotated[int, Field(ge=1, le=65536)]] = Field(
        default_factory=lambda: [64, 32], max_length=64
    )
    activation: Activation = "relu"
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0)


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


class SplitConfig(SpecModel):
    validation: float = Field(default=0.2, gt=0.0, lt=1.0)
    test: float = Field(default=0.0, ge=0.0, lt=1.0)
    stratify: bool = True

    @model_validator(mode="after")
    def _leaves_training_rows(self) -> SplitConfig:
        if self.validation + self.test >= 0.9:
            raise ValueError("validation + test must leave at least 10% of rows for training")
        return self


class DataConfig(SpecModel):
    split: SplitConfig = Field(default_factory=SplitConfig)


class Spec(SpecModel):
    version: Literal[1] = 1
    task: Task
    target: str = Field(min_length=1)
    features: list[str] | None = Field(
        default=None, description="Input columns; default: every column but the target."
    )
    model: MLPConfig = Field(default_factory=MLPConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    seed: int = Field(default=0, ge=0, le=2**32 - 1)

    @model_validator(mode="after")
    def _target_not_a_feature(self) -> Spec:
        if self.features is not None:
            if not self.features:
                raise ValueError("features must name at least one column")
            if self.target in self.features:
                raise ValueError(f"target {self.target!r} cannot also be a feature")
            if len(set(self.features)) != len(self.features):
                raise ValueError("features lists a column twice")
        return self
