"""The model spec: one pydantic schema for the API, validation and training.

`{"task": "classification", "target": "label"}` alone is a complete spec; every other field
has a default that trains a sound model on a small tabular dataset. Each section lives beside
the code that uses it (`engine/models/spec.py`, `engine/training/spec.py`,
`engine/data/spec.py`); this module assembles them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from engine.data.spec import DataConfig, SplitConfig
from engine.models.spec import Activation, MLPConfig, ModelConfig
from engine.spec_model import SpecModel
from engine.training.spec import Device, EarlyStopping, Optimizer, TrainingConfig

__all__ = [
    "Activation",
    "DataConfig",
    "Device",
    "EarlyStopping",
    "MLPConfig",
    "ModelConfig",
    "Optimizer",
    "Spec",
    "SpecModel",
    "SplitConfig",
    "Task",
    "TrainingConfig",
]

Task = Literal["classification", "regression"]


class Spec(SpecModel):
    version: Literal[1] = 1
    task: Task
    target: str = Field(min_length=1)
    features: list[str] | None = Field(
        default=None, description="Input columns; default: every column but the target."
    )
    model: ModelConfig = Field(default_factory=MLPConfig)
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
