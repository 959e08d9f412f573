"""The model spec: one pydantic schema for the API, validation and training.

`{"task": "classification", "target": "label"}` alone is a complete spec; every other field
has a default that trains a sound model on a small tabular dataset. Each section lives beside
its own module (`engine/spec/data.py`, `model.py`, `training.py`, on the base in `base.py`);
this module assembles them. The package is a leaf: it imports nothing of the engine but its
errors, so data, models and training can all depend on it without a cycle.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from engine.errors import SpecMismatch
from engine.spec.base import SpecModel
from engine.spec.data import DataConfig
from engine.spec.model import GANConfig, ModelConfig
from engine.spec.training import TrainingConfig

__all__ = ["MODEL_NAME_PATTERN", "TARGETLESS_TASKS", "Spec", "Task", "check_resources"]

Task = Literal["classification", "regression", "forecasting", "reconstruction", "generation"]
# Tasks whose spec needs no target: the model rebuilds or generates its inputs.
TARGETLESS_TASKS = ("reconstruction", "generation")
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
        "images, RNN for sequences, autoencoder for reconstruction, gan for generation: "
        "conditional on `target` when one is given).",
        validate_default=True,
    )
    training: TrainingConfig = Field(default_factory=TrainingConfig, validate_default=True)
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

    @model_validator(mode="before")
    @classmethod
    def _generation_models_are_gans(cls, document: Any) -> Any:
        # A model without a family is the default MLP (or a layers list) for other tasks;
        # for generation it is the gan family's knobs.
        if (
            isinstance(document, dict)
            and document.get("task") == "generation"
            and isinstance(document.get("model"), dict)
            and "family" not in document["model"]
        ):
            return {**document, "model": {**document["model"], "family": "gan"}}
        return document

    # Field validators (not a model validator) so an error names spec.target / spec.data.
    @field_validator("target")
    @classmethod
    def _target_fits_task(cls, target: str | None, info: ValidationInfo) -> str | None:
        task = info.data.get("task")
        if target is None and task is not None and task not in TARGETLESS_TASKS:
            raise ValueError(f"target is required for task {task!r}")
        if target is not None and task == "reconstruction":
            raise ValueError(
                "reconstruction has no target: the model rebuilds its inputs; name the input "
                "columns in features instead"
            )
        return target

    @field_validator("model")
    @classmethod
    def _model_fits_task(
        cls, model: ModelConfig | None, info: ValidationInfo
    ) -> ModelConfig | None:
        task, target = info.data.get("task"), info.data.get("target")
        if model is None and task == "generation":
            return GANConfig(conditional=target is not None)
        if model is None or task is None:
            return model
        if isinstance(model, GANConfig) != (task == "generation"):
            raise ValueError(
                f"the gan family is for task generation, not {task}"
                if isinstance(model, GANConfig)
                else f"task generation needs the gan family, not {model.family}"
            )
        if isinstance(model, GANConfig) and model.conditional is None:
            model = model.model_copy(update={"conditional": target is not None})
        if isinstance(model, GANConfig) and model.conditional and target is None:
            raise ValueError("a conditional gan needs target: the column of its class labels")
        if isinstance(model, GANConfig) and not model.conditional and target is not None:
            raise ValueError(
                "target is the condition of a conditional gan: set model.conditional to true, "
                "or leave out target to generate every column"
            )
        return model

    @field_validator("training")
    @classmethod
    def _gan_trains_for_its_epochs(
        cls, training: TrainingConfig, info: ValidationInfo
    ) -> TrainingConfig:
        # A GAN has no validation loss: early stopping, on by default, is off for it; asked
        # for, it is a mistake to hear about.
        if info.data.get("task") != "generation" or training.early_stopping is None:
            return training
        if "early_stopping" in training.model_fields_set:
            raise ValueError(
                "a GAN has no validation loss to stop on: leave out early_stopping (it trains "
                "for training.epochs)"
            )
        return training.model_copy(update={"early_stopping": None})

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


def check_resources(spec: Spec) -> None:
    """Refuse `training.resources` the run cannot honour (SpecMismatch naming the field): GPUs
    on a CPU device, both CPU processes and GPUs, and, with more than one rank, the parts of
    training that have a loop of their own (a GAN, cross-validation folds, DBN pretraining)."""
    training = spec.training
    resources = training.resources
    if resources.gpus > 0 and training.device == "cpu":
        raise SpecMismatch(
            "training.resources.gpus",
            "GPUs need training.device cuda or auto; on CPU ask for training.resources.processes",
        )
    if resources.gpus > 0 and resources.processes > 1:
        raise SpecMismatch(
            "training.resources.processes",
            "give processes (CPU ranks) or gpus (one rank per GPU), not both",
        )
    if resources.world_size == 1:
        return
    field = (
        "training.resources.nodes"
        if resources.ranks == 1
        else "training.resources.gpus"
        if resources.gpus > 1
        else "training.resources.processes"
    )
    if spec.task == "generation":
        raise SpecMismatch(field, "a GAN trains in one process: leave out training.resources")
    if spec.data.split.folds is not None:
        raise SpecMismatch(
            "data.split.folds",
            "cross-validation trains in one process: leave out folds, or training.resources",
        )
    if getattr(spec.model, "pretrain", None) is not None:
        raise SpecMismatch(
            "model.pretrain",
            "DBN pretraining runs in one process: leave out pretrain, or training.resources",
        )
