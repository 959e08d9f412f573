from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.models.tables import Model


def get(session: Session, project_id: str, model_id: str) -> Model | None:
    return session.scalar(select(Model).where(Model.id == model_id, Model.project_id == project_id))


def list_page(session: Session, project_id: str, limit: int, offset: int) -> Sequence[Model]:
    query = (
        select(Model)
        .where(Model.project_id == project_id)
        .order_by(Model.created_at.desc(), Model.id)
        .limit(limit)
        .offset(offset)
    )
    return session.scalars(query).all()


def count(session: Session, project_id: str) -> int:
    return session.scalar(
        select(func.count()).select_from(Model).where(Model.project_id == project_id)
    )


def next_version(session: Session, project_id: str, name: str) -> int:
    latest = session.scalar(
        select(func.max(Model.version)).where(Model.project_id == project_id, Model.name == name)
    )
    return (latest or 0) + 1


def add(session: Session, model: Model) -> Model:
    session.add(model)
    session.flush()
    return model
