"""The `training` section of a spec: loss, optimizer, schedule, batches, stopping, precision."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from engine.errors import SpecMismatch
from engine.spec.base import SpecModel

Optimizer = Literal["sgd", "adam", "adamw", "rmsprop", "adagrad"]
Device = Literal["auto", "cpu", "cuda"]
Loss = Literal["auto", "mse", "mae", "huber", "cross_entropy", "binary_cross_entropy"]
# "auto": bf16 autocast on CUDA, fp32 on CPU (where bf16 autocast is slower, not faster).
Precision = Literal["auto", "fp32", "bf16"]

CLASSIFICATION_LOSSES = ("cross_entropy", "binary_cross_entropy")
REGRESSION_LOSSES = ("mse", "mae", "huber")


class EarlyStopping(SpecModel):
    patience: int = Field(default=10, ge=1)
    min_delta: float = Field(default=0.0, ge=0.0)
    restore_best: bool = Field(
        default=True, description="Leave the weights of the best validation epoch, not the last."
    )


# Learning-rate schedules. Each runs on its own clock that starts after `warmup_epochs`; all
# but one_cycle change the rate between epochs, one_cycle between steps.
class StepSchedule(SpecModel):
    """lr = learning_rate * gamma ** (epoch // step_size)."""

    type: Literal["step"]
    step_size: int = Field(default=10, ge=1, le=100_000)
    gamma: float = Field(default=0.1, gt=0.0, le=1.0)


class CosineSchedule(SpecModel):
    """Cosine from learning_rate down to eta_min over t_max epochs, then eta_min."""

    type: Literal["cosine"]
    t_max: int | None = Field(
        default=None, ge=1, le=100_000, description="Default: the epochs after warm-up."
    )
    eta_min: float = Field(default=0.0, ge=0.0)


class OneCycleSchedule(SpecModel):
    """Per step: max_lr/25 up to max_lr over pct_start of the steps, then down to max_lr/25e4."""

    type: Literal["one_cycle"]
    max_lr: float | None = Field(
        default=None, gt=0.0, le=100.0, description="Default: training.learning_rate."
    )
    pct_start: float = Field(default=0.3, gt=0.0, lt=1.0)


class ReduceOnPlateauSchedule(SpecModel):
    """Multiply the rate by factor once more than `patience` epochs in a row bring no lower
    validation loss (torch's ReduceLROnPlateau rule), never below min_lr."""

    type: Literal["reduce_on_plateau"]
    factor: float = Field(default=0.1, gt=0.0, lt=1.0)
    patience: int = Field(default=5, ge=0, le=10_000)
    min_lr: float = Field(default=0.0, ge=0.0)


Schedule = Annotated[
    StepSchedule | CosineSchedule | OneCycleSchedule | ReduceOnPlateauSchedule,
    Field(discriminator="type"),
]


class Resources(SpecModel):
    """How many ranks train the model data-parallel: `processes` CPU processes, or one rank per
    GPU. One rank (the default) trains in the worker itself, with no launcher."""

    processes: int = Field(
        default=1,
        ge=1,
        le=64,
        description="CPU ranks (gloo); more than 1 runs under torch.distributed.run.",
    )
    gpus: int = Field(
        default=0,
        ge=0,
        le=64,
        description="GPU ranks (nccl), one per GPU; needs training.device cuda or auto.",
    )

    nodes: int = Field(
        default=1,
        ge=1,
        le=16,
        description="Workers (machines) the ranks span, each running processes or gpus ranks; "
        "they meet at a c10d rendezvous on the worker that claimed the job.",
    )

    @property
    def ranks(self) -> int:
        """Ranks on each node."""
        return self.gpus if self.gpus > 0 else self.processes

    @property
    def world_size(self) -> int:
        return self.ranks * self.nodes


class TrainingConfig(SpecModel):
    epochs: int = Field(default=100, ge=1)
    # 1 = stochastic gradient descent, n = mini-batch, "full" = batch gradient descent.
    batch_size: Annotated[int, Field(ge=1)] | Literal["full"] = 32
    loss: Loss = Field(
        default="auto",
        description="auto: cross_entropy for classification, mse otherwise. "
        "binary_cross_entropy needs 2 classes and a model with one or two outputs.",
    )
    class_weights: dict[str, float] | Literal["balanced"] | None = Field(
        default=None,
        description="Classification: a weight per class label (missing labels weigh 1), or "
        "'balanced' (n_rows / (n_classes * rows of the class), from the training rows).",
    )
    label_smoothing: float = Field(default=0.0, ge=0.0, lt=0.5)
    optimizer: Optimizer = "adam"
    learning_rate: float = Field(default=1e-3, gt=0.0, le=100.0)
    momentum: float = Field(default=0.0, ge=0.0, lt=1.0)
    nesterov: bool = False
    schedule: Schedule | None = None
    warmup_epochs: int = Field(
        default=0, ge=0, le=10_000, description="Linear warm-up, step by step, before schedule."
    )
    weight_decay: float = Field(default=0.0, ge=0.0, description="L2, applied by the optimizer.")
    l1: float = Field(
        default=0.0, ge=0.0, le=1.0, description="L1 penalty on weights (not biases)."
    )
    gradient_clip_norm: float | None = Field(default=None, gt=0.0)
    early_stopping: EarlyStopping | None = Field(default_factory=EarlyStopping)
    precision: Precision = "auto"
    device: Device = "auto"
    resources: Resources = Field(
        default_factory=Resources,
        description="Data-parallel ranks: processes on CPU, or gpus (see check_resources).",
    )

    @model_validator(mode="after")
    def _consistent(self) -> TrainingConfig:
        if self.nesterov and (self.optimizer != "sgd" or self.momentum == 0.0):
            raise ValueError("nesterov needs optimizer 'sgd' with momentum > 0")
        if self.warmup_epochs >= self.epochs:
            raise ValueError("warmup_epochs must be fewer than epochs")
        if isinstance(self.class_weights, dict):
            bad = [k for k, w in self.class_weights.items() if not 0.0 <= w <= 1e6]
            if bad or not self.class_weights:
                raise ValueError("class_weights needs at least one class, each weight in [0, 1e6]")
        return self


class LossMismatch(SpecMismatch, ValueError):
    """A SpecMismatch (the service's 422 with a field) that pydantic validators also accept."""


def resolve_loss(config: TrainingConfig, task: str) -> str:
    if config.loss != "auto":
        return config.loss
    return "cross_entropy" if task == "classification" else "mse"


def check_loss_for_task(config: TrainingConfig, task: str) -> None:
    """Refuse a loss (or its options) that cannot train `task`; raises LossMismatch."""
    loss = resolve_loss(config, task)
    allowed = CLASSIFICATION_LOSSES if task == "classification" else REGRESSION_LOSSES
    if loss not in allowed:
        raise LossMismatch(
            "training.loss", f"{loss} does not fit task {task!r}; use one of {', '.join(allowed)}"
        )
    if task != "classification":
        if config.class_weights is not None:
            raise LossMismatch("training.class_weights", "class weights need task classification")
        if config.label_smoothing > 0:
            raise LossMismatch("training.label_smoothing", "label smoothing needs classification")
