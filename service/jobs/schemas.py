from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from engine.spec import Spec
from service.core.leases import WorkStatus
from service.core.schemas import Evaluation


class JobCreate(BaseModel):
    dataset_id: str = Field(
        min_length=1,
        max_length=64,
        description="The training dataset; the preprocessing is fitted on it alone.",
    )
    spec: Spec
    validation_dataset_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="A dataset of this project used whole as the validation set (early "
        "stopping, validation curves) instead of rows cut from the training dataset. It must "
        "hold the columns the spec reads, of the same types (or arrays of the same shape).",
    )
    test_dataset_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="A dataset of this project used whole as the test set: the report's test "
        "metrics are on it, and no test rows are cut from the training dataset.",
    )


class Progress(BaseModel):
    epoch: int
    epochs: int
    samples_per_second: float | None = None
    eta_seconds: float | None = None
    fold: int | None = Field(
        default=None, description="Cross-validation: the last fold finished, before epochs."
    )
    folds: int | None = Field(
        default=None, description="Fold models in all: data.split.folds x data.split.repeats."
    )


class JobError(BaseModel):
    code: str
    message: str


class JobWarning(BaseModel):
    code: Literal["vanishing_gradient", "exploding_gradient", "dead_relu", "overfitting"] | str
    epoch: int = Field(description="The epoch the condition began")
    message: str


class Fold(BaseModel):
    fold: int = Field(description="1-based, counted over every repeat.")
    repeat: int = Field(default=1, description="Which cut of the folds (data.split.repeats).")
    rows: dict[str, int] = Field(description="train, validation, and test: the held-out fold.")
    epochs_run: int
    best_epoch: int
    metrics: dict[str, float]
    notes: list[str] = Field(default_factory=list)


class CrossValidation(BaseModel):
    folds: list[Fold]
    repeats: int = Field(
        default=1, description="data.split.repeats: the folds were cut this many times."
    )
    mean: dict[str, float] = Field(description="The mean over every fold of every repeat.")
    std: dict[str, float] = Field(description="Population standard deviation over the folds.")


class Sampling(BaseModel):
    method: str
    before: dict[str, int] = Field(description="Training rows per class before sampling.")
    after: dict[str, int] = Field(description="Training rows per class trained on.")
    synthetic: int | None = Field(
        default=None, description="smote, smotenc, smoten: synthetic training rows added."
    )


class FeatureImportance(BaseModel):
    feature: str = Field(description="A table's raw column; a window's or sequence's channel")
    mean: float = Field(description="Mean drop of the score when the feature is shuffled")
    std: float


class PermutationImportance(BaseModel):
    metric: str = Field(description="accuracy (classification) or r2 (regression, forecasting)")
    baseline: float | None = Field(default=None, description="The unshuffled score")
    rows: int | None = Field(default=None, description="Test rows scored (at most 1000)")
    repeats: int | None = Field(default=None, description="Shuffles per feature")
    importances: list[FeatureImportance] = Field(description="The most important first")
    notes: list[str] = Field(default_factory=list)


class Compute(BaseModel):
    device: Literal["cpu", "cuda"] = Field(description="What training.device resolved to")
    device_name: str = Field(description="The GPU's name on CUDA, else cpu")
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        description="What training.precision resolved to: bf16 autocast or full precision"
    )
    ranks: int = Field(description="Data-parallel processes (training.resources)")


class JobReport(BaseModel):
    """What a succeeded job learned about its data and how its model did on the test split."""

    rows: dict[str, int] = Field(description="Rows per split: train, validation, test.")
    dropped: dict[str, int] = Field(description="Training rows removed by cleaning, by rule.")
    leakage_removed: dict[str, int] = Field(
        description="Validation and test rows left out because they repeat a training row."
    )
    sampling: Sampling | None = None
    evaluation: Evaluation = Field(description="The final model, scored once on the test split.")
    cross_validation: CrossValidation | None = None
    permutation_importance: PermutationImportance | None = Field(
        default=None,
        description="Global importance per feature on the test split (none for autoencoders).",
    )
    compute: Compute | None = Field(
        default=None, description="Where the final model trained (reports before this: none)."
    )
    notes: list[str] = Field(default_factory=list)


class JobOut(BaseModel):
    id: str
    dataset_id: str
    validation_dataset_id: str | None = Field(
        default=None, description="The given validation set, if any."
    )
    test_dataset_id: str | None = Field(default=None, description="The given test set, if any.")
    status: WorkStatus
    queue: str
    attempts: int
    cancel_requested: bool
    progress: Progress | None
    metrics: dict[str, float] | None
    warnings: list[JobWarning]
    model_id: str | None
    report: JobReport | None = Field(description="Set when the job has succeeded.")
    error: JobError | None
    spec: dict[str, Any]
    study_id: str | None = Field(default=None, description="Set on a study's trial.")
    trial_number: int | None = None
    waiting_reason: str | None = Field(
        default=None,
        description="Set while queued when no live worker listens on the job's queue: why it "
        "has not started (e.g. it asks for CUDA and no worker with CUDA is running).",
    )
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class EpochMetrics(BaseModel):
    epoch: int
    values: dict[str, float]


class JobMetricsOut(BaseModel):
    job_id: str
    epochs: list[EpochMetrics]
    warnings: list[JobWarning]


class JobCompared(BaseModel):
    id: str
    status: WorkStatus
    dataset_id: str
    spec: dict[str, Any] = Field(description="The spec as submitted, defaults filled in.")
    epochs_run: int = Field(description="Epochs recorded so far.")
    best: EpochMetrics | None = Field(
        description="The epoch with the lowest val_loss (the first of equals); null before "
        "the first epoch is recorded."
    )
    last: EpochMetrics | None = Field(description="The last epoch recorded.")
    curves: dict[str, list[int | float | None]] = Field(
        description="One series per name, aligned with `epoch`: `epoch`, `train_loss`, "
        "`val_loss`, the task's metrics, `learning_rate`. A name an epoch lacks is null there. "
        "The per-layer `grad_norm/*` readings are left out: see `GET /v1/jobs/{id}/metrics`.",
        examples=[{"epoch": [1, 2], "train_loss": [0.69, 0.52], "val_loss": [0.66, 0.55]}],
    )


class SpecDifference(BaseModel):
    path: str = Field(examples=["training.learning_rate"])
    values: list[Any] = Field(
        description="The value in each job's spec, in the order of `jobs`; null where a spec "
        "lacks the path."
    )


class JobComparison(BaseModel):
    jobs: list[JobCompared] = Field(description="In the order of `ids`.")
    spec_differences: list[SpecDifference] = Field(
        description="The dotted spec paths whose values differ across the jobs, sorted; "
        "lists are compared whole."
    )
