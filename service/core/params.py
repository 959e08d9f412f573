"""Path and query parameters that routes of several domains take, declared once so that they
read, validate and document alike."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

# A model, however a client names it.
Ref = Annotated[
    str,
    Path(
        description="A model: its id (`mdl_...`), `{name}/versions/{n}` or `{name}@{alias}`",
        examples=["churn@production"],
    ),
]
# A page of a list.
Limit = Annotated[int, Query(ge=1, le=200)]
Offset = Annotated[int, Query(ge=0)]
