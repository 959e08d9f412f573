"""The base of every spec section."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class SpecModel(BaseModel):
    # A typo in a field name is a mistake the user wants to hear about, not a silent default.
    model_config = ConfigDict(extra="forbid")
