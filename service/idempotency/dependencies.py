from __future__ import annotations

from typing import Annotated

from fastapi import Header

from service.idempotency.tables import MAX_KEY_LENGTH

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=MAX_KEY_LENGTH,
        description=(
            "Makes the request safe to retry: a second request with the same key (in the same "
            "project) creates nothing and answers 200 with what the first one created, "
            "whatever its body."
        ),
    ),
]
