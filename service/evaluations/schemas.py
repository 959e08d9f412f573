from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from service.core.leases import WorkStatus
from service.core.schemas import Evaluation as EvaluationReport


class EvaluationCreate(BaseModel):
    dataset_id: str = Field(
        min_length=1,
        max_length=64,
        description="A labelled dataset of this project holding what the model reads.",
    )


class EvaluationError(BaseModel):
    code: str
    message: str


class EvaluationOut(BaseModel):
    id: str
    model_id: str = Field(description="The model the reference named at submit time.")
    model_name: str
    model_version: int
    dataset_id: str
    status: WorkStatus
    attempts: int
    cancel_requested: bool
    report: EvaluationReport | None = Field(
        description="Set once succeeded: the metrics of a job's test report, on every row of "
        "the dataset the model can score."
    )
    error: EvaluationError | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
