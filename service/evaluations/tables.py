from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from service.core.database import Base, new_id
from service.core.leases import LeasedColumns


class Evaluation(LeasedColumns, Base):
    """One model scored on one stored labelled dataset, run on a worker under a lease, as a
    batch prediction is. Its report has the metrics of a job's test report."""

    __tablename__ = "evaluations"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("ev"))
    # The model the reference named when it was submitted: moving an alias later changes
    # nothing here.
    model_id: Mapped[str] = mapped_column(ForeignKey("models.id"), index=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id"), index=True)
    # {"rows", "metrics", "confusion_matrix"?, "per_horizon"?, "notes"} once succeeded.
    report: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
