from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from engine.search.space import SearchSpace
from engine.spec import MODEL_NAME_PATTERN, Spec

Direction = Literal["minimize", "maximize"]
StudyStatus = Literal["running", "succeeded", "failed", "cancelled"]
TrialState = Literal["queued", "running", "succeeded", "pruned", "failed", "cancelled"]


class Objective(BaseModel):
    metric: str | None = Field(
        default=None,
        description="An epoch metric (`val_accuracy`, `val_loss`, ...) or, when the spec "
        "sets data.split.folds, the cross-validation's mean (`cv_accuracy`, `cv_f1_macro`, "
        "`cv_roc_auc`, `cv_r2`, `cv_rmse`, `cv_mae`); default: the task's validation metric "
        "(val_accuracy, val_r2, val_rmse, or val_loss for reconstruction).",
    )
    direction: Direction | None = Field(
        default=None, description="Default: maximize accuracy and r2, minimize the others."
    )


class StudyCreate(BaseModel):
    dataset_id: str = Field(min_length=1, max_length=64)
    name: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        pattern=MODEL_NAME_PATTERN,
        description="The trials' models are registered under this name, the best as "
        "`{name}@best`; default: `study-` and the study's id.",
    )
    spec: Spec = Field(description="The base spec every trial starts from.")
    search_space: SearchSpace = Field(
        description='{spec path: parameter}: `{"type": "float", "low": 1e-4, "high": '
        '0.1, "log": true}`, `{"type": "int", "low": 1, "high": 4}`, `{"type": '
        '"categorical", "choices": [...]}`; `when` makes a parameter conditional.'
    )
    objective: Objective = Field(default_factory=Objective)
    max_trials: int = Field(default=20, ge=1, le=1000)
    parallel_trials: int = Field(default=2, ge=1, le=64)
    max_failed_trials: int = Field(
        default=3, ge=0, description="The study fails when more trials than this fail."
    )
    sampler: Literal["tpe", "random", "grid"] = "tpe"
    pruner: Literal["median", "successive_halving", "hyperband", "none"] = "median"
    seed: int = Field(default=0, ge=0, le=2**32 - 1)
    baseline: bool = Field(
        default=True,
        description="Trial 0 trains the base spec's own values, where the space holds them "
        "(not with the grid sampler).",
    )


class ObjectiveOut(BaseModel):
    metric: str
    direction: Direction


class TrialOut(BaseModel):
    number: int
    job_id: str
    state: TrialState
    params: dict[str, Any]
    value: float | None = Field(description="The objective of the trained model (succeeded).")
    epochs_run: int
    duration_seconds: float | None
    error: str | None = None


class BestTrial(BaseModel):
    number: int
    job_id: str
    params: dict[str, Any]
    value: float
    model: str = Field(description="Predict with it at `/v1/models/{model}/predict`.")


class StudyOut(BaseModel):
    id: str
    name: str
    dataset_id: str
    status: StudyStatus
    objective: ObjectiveOut
    max_trials: int
    parallel_trials: int
    max_failed_trials: int
    sampler: str
    pruner: str
    counts: dict[TrialState, int]
    best: BestTrial | None
    trials: list[TrialOut]
    importances: dict[str, float] | None = Field(
        description="Each parameter's importance to the objective (Optuna's default "
        "evaluator), once at least 4 trials have succeeded."
    )
    error: str | None
    created_at: datetime
    finished_at: datetime | None
