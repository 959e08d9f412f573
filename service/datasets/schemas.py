from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

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
    kind: Literal["table", "arrays"]
    rows: int
    columns: list[ColumnOut]
    arrays: dict[str, Any] | None = None
    created_at: datetime
