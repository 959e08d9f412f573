from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints


class KeyCreate(BaseModel):
    name: str = Field(default="key", min_length=1, max_length=200)


class KeyOut(BaseModel):
    """A key as listed: never the secret, only its first characters to tell keys apart."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


class KeyCreated(KeyOut):
    secret: str = Field(description="Shown this once; only a hash of it is stored.")


class KeyList(BaseModel):
    items: list[KeyOut]


class ProjectCreate(BaseModel):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class ProjectOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    created_at: datetime


class ProjectCreated(ProjectOut):
    key: KeyCreated = Field(description="The project's first key; its secret is shown once.")
