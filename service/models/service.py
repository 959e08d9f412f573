"""Models: what succeeded jobs produced, and predictions from them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.orm import Session

from engine.errors import DataError, InvalidInstances
from engine.inference import Predictor
from service.auth.tables import Project
from service.core.errors import Conflict, InvalidInput, NotFound, TooLarge, invalid_field
from service.core.schemas import Page
from service.core.settings import Settings
from service.models import repository
from service.models.cache import ModelCache
from service.models.schemas import EncodeResponse, ModelOut, PredictResponse
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
    instances: list[Any],
) -> PredictResponse:
    predictor = _predictor(session, cache, settings, project, model_id, instances)
    with _instance_errors():
        predictions = predictor.predict(instances)
    return PredictResponse(model_id=model_id, predictions=predictions)


def encode(
    session: Session,
    cache: ModelCache,
    settings: Settings,
    project: Project,
    model_id: str,
    instances: list[Any],
) -> EncodeResponse:
    predictor = _predictor(session, cache, settings, project, model_id, instances)
    if not predictor.can_encode:
        raise Conflict(
            f"model {model_id!r} has no encoder; embeddings come from autoencoder models",
            details={"family": predictor.spec.model.family if predictor.spec.model else None},
        )
    with _instance_errors():
        embeddings = predictor.encode(instances)
    return EncodeResponse(model_id=model_id, embeddings=embeddings)


def _predictor(
    session: Session,
    cache: ModelCache,
    settings: Settings,
    project: Project,
    model_id: str,
    instances: list[Any],
) -> Predictor:
    model = get_model(session, project, model_id)
    if len(instances) > settings.max_predict_rows:
        raise TooLarge(
            f"instances: {len(instances)} rows is over the limit of {settings.max_predict_rows}",
            details=[{"field": "instances", "limit": settings.max_predict_rows}],
        )
    return cache.get(model.id)


@contextmanager
def _instance_errors() -> Iterator[None]:
    try:
        yield
    except InvalidInstances as exc:
        raise InvalidInput(exc.message, code="invalid_instances", details=exc.problems) from exc
    except DataError as exc:
        raise invalid_field("instances", exc.message, code="invalid_instances") from exc
