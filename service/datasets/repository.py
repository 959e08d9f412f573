from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.datasets.tables import Dataset


def get(session: Session, project_id: str, dataset_id: str) -> Dataset | None:
    return session.scalar(
        select(Dataset).where(Dataset.id == dataset_id, Dataset.project_id == project_id)
    )


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
