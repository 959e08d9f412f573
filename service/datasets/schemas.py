from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict


class ColumnOut(BaseModel):
    name: str
    type: str
    dtype: str
    missing: int


class DatasetOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    source_format: str
    size_bytes: int
    sha256: str
    rows: int
    columns: list[ColumnOut]
    created_at: datetime
