from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, delete, func, select
from sqlalchemy.orm import Session

from service.jobs.tables import Job
from service.models.tables import Model, ModelAlias


def get(session: Session, project_id: str, model_id: str) -> Model | None:
    return session.scalar(select(Model).where(Model.id == model_id, Model.project_id == project_id))


def get_many(session: Session, project_id: str, model_ids: set[str]) -> Sequence[Model]:
    if not model_ids:
        return []
    return session.scalars(
        select(Model).where(Model.project_id == project_id, Model.id.in_(model_ids))
    ).all()


def get_version(session: Session, project_id: str, name: str, version: int) -> Model | None:
    return session.scalar(
        select(Model).where(
            Model.project_id == project_id, Model.name == name, Model.version == version
        )
    )


def get_by_alias(session: Session, project_id: str, name: str, alias: str) -> Model | None:
    # One query over two unique indexes: (project, name, alias) then (project, name, version).
    return session.scalar(
        select(Model)
        .join(
            ModelAlias,
            (ModelAlias.project_id == Model.project_id)
            & (ModelAlias.name == Model.name)
            & (ModelAlias.version == Model.version),
        )
        .where(
            ModelAlias.project_id == project_id,
            ModelAlias.name == name,
            ModelAlias.alias == alias,
        )
    )


def list_names(session: Session, project_id: str, limit: int, offset: int) -> Sequence[Row[Any]]:
    """(name, latest_version, versions, created_at, updated_at), the latest registered first."""
    updated_at = func.max(Model.created_at)
    query = (
        select(
            Model.name,
            func.max(Model.version).label("latest_version"),
            func.count().label("versions"),
            func.min(Model.created_at).label("created_at"),
            updated_at.label("updated_at"),
        )
        .where(Model.project_id == project_id)
        .group_by(Model.name)
        .order_by(updated_at.desc(), Model.name)
        .limit(limit)
        .offset(offset)
    )
    return session.execute(query).all()


def count_names(session: Session, project_id: str) -> int:
    return session.scalar(
        select(func.count(func.distinct(Model.name))).where(Model.project_id == project_id)
    )


def list_versions(
    session: Session, project_id: str, name: str, limit: int, offset: int
) -> Sequence[Row[tuple[Model, Job]]]:
    """(model, the job that trained it), the newest version first."""
    query = (
        select(Model, Job)
        .join(Job, Job.id == Model.job_id)
        .where(Model.project_id == project_id, Model.name == name)
        .order_by(Model.version.desc())
        .limit(limit)
        .offset(offset)
    )
    return session.execute(query).all()


def count_versions(session: Session, project_id: str, name: str) -> int:
    return session.scalar(
        select(func.count())
        .select_from(Model)
        .where(Model.project_id == project_id, Model.name == name)
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


def aliases(session: Session, project_id: str, names: Sequence[str]) -> Sequence[ModelAlias]:
    if not names:
        return []
    query = (
        select(ModelAlias)
        .where(ModelAlias.project_id == project_id, ModelAlias.name.in_(names))
        .order_by(ModelAlias.alias)
    )
    return session.scalars(query).all()


def get_alias(session: Session, project_id: str, name: str, alias: str) -> ModelAlias | None:
    return session.scalar(
        select(ModelAlias).where(
            ModelAlias.project_id == project_id,
            ModelAlias.name == name,
            ModelAlias.alias == alias,
        )
    )


def add_alias(session: Session, alias: ModelAlias) -> ModelAlias:
    session.add(alias)
    session.flush()
    return alias


def delete_alias(session: Session, alias: ModelAlias) -> None:
    session.execute(delete(ModelAlias).where(ModelAlias.id == alias.id))
    session.flush()
