"""Models: what succeeded jobs produced, and predictions from them."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from engine.errors import InvalidInstances
from service.auth.tables import Project
from service.core.errors import InvalidInput, NotFound, TooLarge
from service.core.schemas import Page
from service.core.settings import Settings
from service.models import repository
from service.models.cache import ModelCache
from service.models.schemas import ModelOut, PredictResponse
from service.models.tables import Model


def get_model(session: Session, project: Project, model_id: str) -> Model:
    model = repository.get(session, project.id, model_id)
    if model is None:
        raise NotFound(f"model {model_id!r} not found")
    return model


def list_models(session: Session, project: Project, limit: int, offset: int) -> Page[ModelOut]:
    items = repository.list_page(session, project.id, limit, offset)
    return Page[ModelOut](
        items=[ModelOut.model_validate(m) for m in items],
        total=repository.count(session, project.id),
        limit=limit,
        offset=offset,
    )


def predict(
    session: Session,
    cache: ModelCache,
    settings: Settings,
    project: Project,
    model_id: str,
    instances: list[dict[str, Any]],
) -> PredictResponse:
    model = get_model(session, project, model_id)
    if len(instances) > settings.max_predict_rows:
        raise TooLarge(
            f"instances: {len(instances)} rows is over the limit of {settings.max_predict_rows}",
            details=[{"field": "instances", "limit": settings.max_predict_rows}],
        )
    predictor = cache.get(model.id)
    try:
        predictions = predictor.predict(instances)
    except InvalidInstances as exc:
        raise InvalidInput(exc.message, code="invalid_instances", details=exc.problems) from exc
    return PredictResponse(model_id=model.id, predictions=predictions)
