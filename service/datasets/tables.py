from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from service.core.database import Base, UTCDateTime, new_id, utcnow


class Dataset(Base):
    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("ds"))
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    source_format: Mapped[str] = mapped_column(String(16))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    # "table" (rows and columns, stored as Parquet) or "arrays" (x/y tensors, stored as NPZ).
    kind: Mapped[str] = mapped_column(String(16), default="table", server_default="table")
    rows: Mapped[int] = mapped_column(Integer)
    columns: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    arrays: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


def source_key(dataset_id: str) -> str:
    return f"datasets/{dataset_id}/source"


def table_key(dataset_id: str) -> str:
    return f"datasets/{dataset_id}/data.parquet"


def arrays_key(dataset_id: str) -> str:
    return f"datasets/{dataset_id}/data.npz"


def profile_key(dataset_id: str) -> str:
    return f"datasets/{dataset_id}/profile.json"


def target_profile_key(dataset_id: str, column_index: int) -> str:
    # The column's position, never its name: a name is user input.
    return f"datasets/{dataset_id}/profile-target-{column_index}.json"
