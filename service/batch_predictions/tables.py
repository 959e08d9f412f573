from __future__ import annotations

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from service.core.database import Base, new_id
from service.core.leases import LeasedColumns

FORMATS = ("parquet", "csv")


class BatchPrediction(LeasedColumns, Base):
    """Predictions of one model over every row of one dataset, run on a worker under a lease,
    as a training job is."""

    __tablename__ = "batch_predictions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("bp"))
    # The model the reference named when it was submitted: moving an alias later changes
    # nothing here.
    model_id: Mapped[str] = mapped_column(ForeignKey("models.id"))
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id"))
    format: Mapped[str] = mapped_column(String(16))
    id_column: Mapped[str | None] = mapped_column(String(200), nullable=True)
    result_key: Mapped[str | None] = mapped_column(String(200), nullable=True)


def result_key(batch_id: str, fmt: str) -> str:
    # The store's keys begin with a plain lowercase word (no `_`).
    return f"predictions/{batch_id}/predictions.{fmt}"
