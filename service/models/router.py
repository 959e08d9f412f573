from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from service.auth.dependencies import CurrentProject
from service.core.deps import SessionDep, SettingsDep
from service.core.schemas import Page, error_responses
from service.models import service
from service.models.cache import ModelCache
from service.models.schemas import EncodeResponse, ModelOut, PredictRequest, PredictResponse

# Every route here needs a key and validates its input.
router = APIRouter(prefix="/v1/models", tags=["models"], responses=error_responses(401, 422))


def get_model_cache(request: Request) -> ModelCache:
    return request.app.state.model_cache


ModelCacheDep = Annotated[ModelCache, Depends(get_model_cache)]


@router.get("", operation_id="list_models")
def list_models(
    project: CurrentProject,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Page[ModelOut]:
    return service.list_models(session, project, limit, offset)


@router.get("/{model_id}", operation_id="get_model", responses=error_responses(404))
def get_model(model_id: str, project: CurrentProject, session: SessionDep) -> ModelOut:
    return ModelOut.model_validate(service.get_model(session, project, model_id))


@router.post(
    "/{model_id}/predict",
    operation_id="predict",
    response_model_exclude_none=True,
    responses=error_responses(404, 413),
)
def predict(
    model_id: str,
    body: PredictRequest,
    project: CurrentProject,
    session: SessionDep,
    cache: ModelCacheDep,
    settings: SettingsDep,
) -> PredictResponse:
    """Predict from raw rows; the model replays its own preprocessing."""
    return service.predict(session, cache, settings, project, model_id, body.instances)


@router.post(
    "/{model_id}/encode",
    operation_id="encode",
    responses=error_responses(404, 409, 413),
)
def encode(
    model_id: str,
    body: PredictRequest,
    project: CurrentProject,
    session: SessionDep,
    cache: ModelCacheDep,
    settings: SettingsDep,
) -> EncodeResponse:
    """Embeddings (the latent vector) from an autoencoder model, one per instance."""
    return service.encode(session, cache, settings, project, model_id, body.instances)
