"""The model spec: one pydantic schema for the API, validation and training.

`{"task": "classification", "target": "label"}` alone is a complete spec; every other field
has a default that trains a sound model on a small tabular dataset. Each section lives beside
its own module (`engine/spec/data.py`, `model.py`, `training.py`, on the base in `base.py`);
this module assembles them. The package is a leaf: it imports nothing of the engine but its
errors, so data, models and training can all depend on it without a cycle.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from engine.spec.base import SpecModel
from engine.spec.data import DataConfig
from engine.spec.model import ModelConfig
from engine.spec.training import TrainingConfig

__all__ = ["MODEL_NAME_PATTERN", "Spec", "Task"]

Task = Literal["classification", "regression", "forecasting", "reconstruction"]
# A registered model's name: no `/` or `@`, which a model reference (`name@alias`,
# `name/versions/3`) uses as separators.
MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"


class Spec(SpecModel):
    version: Literal[1] = 1
    task: Task
    target: str | None = Field(
        default=None,
        min_length=1,
        description="Column (or NPZ array, e.g. `y`) to predict; not used by reconstruction.",
        validate_default=True,
    )
    features: list[str] | None = Field(
        default=None, description="Input columns; default: every column but the target."
    )
    model: ModelConfig | None = Field(
        default=None,
        description="Default: chosen from the task and the input (MLP for rows, CNN for "
        "images, RNN for sequences, autoencoder for reconstruction).",
    )
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    data: DataConfig = Field(default_factory=DataConfig, validate_default=True)
    seed: int = Field(default=0, ge=0, le=2**32 - 1)
    model_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        pattern=MODEL_NAME_PATTERN,
        description="Name the trained model is registered under, as its next version; "
        "default: the dataset's name (reduced to letters, digits, `.`, `_` and `-`).",
    )

    # Field validators (not a model validator) so an error names spec.target / spec.data.
    @field_validator("target")
    @classmethod
    def _target_fits_task(cls, target: str | None, info: ValidationInfo) -> str | None:
        task = info.data.get("task")
        if target is None and task is not None and task != "reconstruction":
            raise ValueError(f"target is required for task {task!r}")
        if target is not None and task == "reconstruction":
            raise ValueError(
                "reconstruction has no target: the model rebuilds its inputs; name the input "
                "columns in features instead"
            )
        return target

    @field_validator("data")
    @classmethod
    def _forecasting_has_a_window(cls, data: DataConfig, info: ValidationInfo) -> DataConfig:
        if info.data.get("task") == "forecasting" and getattr(data, "window", None) is None:
            raise ValueError("forecasting needs data.window (how many past steps to read)")
        return data

    @model_validator(mode="after")
    def _target_not_a_feature(self) -> Spec:
        if self.features is not None:
            if not self.features:
                raise ValueError("features must name at least one column")
            if self.target is not None and self.target in self.features:
                raise ValueError(f"target {self.target!r} cannot also be a feature")
            if len(set(self.features)) != len(self.features):
                raise ValueError("features lists a column twice")
        return self
