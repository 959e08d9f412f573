from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.datasets.tables import Dataset


def get(session: Session, project_id: str, dataset_id: str) -> Dataset | None:
    return session.scalar(
        select(Dataset).where(Dataset.id == dataset_id, Dataset.project_id == project_id)
    )


def get_by_sha256(session: Session, project_id: str, sha256: str) -> Dataset | None:
    """The project's oldest dataset with these exact bytes."""
    return session.scalars(
        select(Dataset)
        .where(Dataset.project_id == project_id, Dataset.sha256 == sha256)
        .order_by(Dataset.created_at, Dataset.id)
        .limit(1)
    ).first()


def list_page(session: Session, project_id: str, limit: int, offset: int) -> Sequence[Dataset]:
    query = (
        select(Dataset)
        .where(Dataset.project_id == project_id)
        .order_by(Dataset.created_at.desc(), Dataset.id)
        .limit(limit)
        .offset(offset)
    )
    return session.scalars(query).all()


def count(session: Session, project_id: str) -> int:
    return session.scalar(
        select(func.count()).select_from(Dataset).where(Dataset.project_id == project_id)
    )


def add(session: Session, dataset: Dataset) -> Dataset:
    session.add(dataset)
    session.flush()
    return dataset
