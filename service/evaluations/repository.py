"""Evaluation queries: the leased-work kernel's (service/core/leases.py), and the lists of one
model's evaluations and of one project's, filtered by model and dataset."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from service.core.leases import LeasedWorkRepository
from service.evaluations.tables import Evaluation


class EvaluationRepository(LeasedWorkRepository[Evaluation]):
    def filtered_page(
        self,
        session: Session,
        project_id: str,
        limit: int,
        offset: int,
        **filters: str | None,
    ) -> Sequence[Evaluation]:
        query = self._filtered(select(Evaluation), project_id, **filters)
        query = query.order_by(Evaluation.created_at.desc(), Evaluation.id)
        return session.scalars(query.limit(limit).offset(offset)).all()

    def filtered_count(self, session: Session, project_id: str, **filters: str | None) -> int:
        query = self._filtered(select(func.count()).select_from(Evaluation), project_id, **filters)
        return session.scalar(query) or 0

    def _filtered(
        self,
        query: Select,
        project_id: str,
        model_id: str | None = None,
        dataset_id: str | None = None,
        status: str | None = None,
    ) -> Select:
        query = query.where(Evaluation.project_id == project_id)
        if model_id is not None:
            query = query.where(Evaluation.model_id == model_id)
        if dataset_id is not None:
            query = query.where(Evaluation.dataset_id == dataset_id)
        if status is not None:
            query = query.where(Evaluation.status == status)
        return query


evaluations = EvaluationRepository(Evaluation, "evaluation")
