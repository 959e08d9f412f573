from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from service.core.database import Base, UTCDateTime, new_id, utcnow

RUNNING, SUCCEEDED, FAILED, CANCELLED = "running", "succeeded", "failed", "cancelled"


class Study(Base):
    """A hyperparameter search: a base spec, a space over its paths, and trials, each a
    training job. Optuna keeps the sampler's side of it under the study's id."""

    __tablename__ = "studies"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("stu"))
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id"), index=True)
    # Also the name the trials' models are registered under, the best one as `{name}@best`.
    name: Mapped[str] = mapped_column(String(200))
    base_spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    search_space: Mapped[dict[str, Any]] = mapped_column(JSON)
    objective_metric: Mapped[str] = mapped_column(String(64))
    direction: Mapped[str] = mapped_column(String(8))
    max_trials: Mapped[int] = mapped_column(Integer)
    parallel_trials: Mapped[int] = mapped_column(Integer)
    max_failed_trials: Mapped[int] = mapped_column(Integer)
    sampler: Mapped[str] = mapped_column(String(16))
    pruner: Mapped[str] = mapped_column(String(32))
    seed: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), index=True, default=RUNNING)
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    best_job_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    # {path: share of the objective's variance}, refreshed as trials complete: reads are many,
    # and each computation fits a forest over every trial.
    importances: Mapped[dict[str, float] | None] = mapped_column(JSON, nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
