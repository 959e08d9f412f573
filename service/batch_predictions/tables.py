from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from service.core.database import Base, UTCDateTime, new_id, utcnow

# A batch prediction lives through the same states as a training job.
from service.jobs.tables import QUEUED

FORMATS = ("parquet", "csv")


class BatchPrediction(Base):
    """Predictions of one model over every row of one dataset, run as a job on a worker."""

    __tablename__ = "batch_predictions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("bp"))
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    # The model the reference named when it was submitted: moving an alias later changes
    # nothing here.
    model_id: Mapped[str] = mapped_column(ForeignKey("models.id"))
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id"))
    format: Mapped[str] = mapped_column(String(16))
    id_column: Mapped[str | None] = mapped_column(String(200), nullable=True)
    status: Mapped[str] = mapped_column(String(16), index=True, default=QUEUED)
    queue: Mapped[str] = mapped_column(String(32))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # The lease, as for training jobs: only the holder of lease_token writes progress and
    # the outcome, until lease_expires_at (renewed with every chunk).
    worker_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    lease_token: Mapped[str | None] = mapped_column(String(40), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # When its message was last sent, as for jobs: the reconciler sends a lost one again.
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    progress: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    result_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


def result_key(batch_id: str, fmt: str) -> str:
    # The store's keys begin with a plain lowercase word (no `_`).
    return f"predictions/{batch_id}/predictions.{fmt}"
