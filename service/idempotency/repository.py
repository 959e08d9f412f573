from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.idempotency.tables import IdempotencyKey


def resource_id(session: Session, project_id: str, kind: str, key: str) -> str | None:
    return session.scalar(
        select(IdempotencyKey.resource_id).where(
            IdempotencyKey.project_id == project_id,
            IdempotencyKey.kind == kind,
            IdempotencyKey.key == key,
        )
    )


def add(session: Session, row: IdempotencyKey) -> IdempotencyKey:
    session.add(row)
    session.flush()
    return row
