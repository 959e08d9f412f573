from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from service.auth.dependencies import CurrentProject
from service.core.deps import SessionDep, SettingsDep, StoreDep
from service.core.params import Limit, Offset
from service.core.schemas import Page, error_responses
from service.datasets import service
from service.datasets.schemas import DatasetOut, DatasetProfileOut
from service.datasets.upload import UPLOAD_OPENAPI, UploadBody
from service.idempotency.dependencies import IdempotencyKeyHeader

# Every route here needs a key and validates its input.
router = APIRouter(prefix="/v1/datasets", tags=["datasets"], responses=error_responses(401, 422))


@router.post(
    "",
    status_code=201,
    operation_id="upload_dataset",
    openapi_extra=UPLOAD_OPENAPI,
    responses={
        200: {
            "model": DatasetOut,
            "description": "This project uploaded the same bytes, or sent the same "
            "Idempotency-Key, before: that dataset",
        },
        201: {"description": "A new dataset"},
        **error_responses(413),
    },
)
async def upload_dataset(
    request: Request,
    response: Response,
    project: CurrentProject,
    session: SessionDep,
    store: StoreDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> DatasetOut:
    """Upload a CSV, TSV, JSON Lines or Parquet file, NPZ arrays or a ZIP of images
    (multipart field `file`); it is streamed to the store, converted and profiled."""
    body = UploadBody(
        content_type=request.headers.get("content-type"),
        content_length=request.headers.get("content-length"),
        chunks=request.stream(),
    )
    dataset, created = await service.upload_dataset(
        body, session, store, settings, project, idempotency_key
    )
    if not created:
        response.status_code = 200
    return DatasetOut.model_validate(dataset)


@router.get("", operation_id="list_datasets")
def list_datasets(
    project: CurrentProject, session: SessionDep, limit: Limit = 50, offset: Offset = 0
) -> Page[DatasetOut]:
    return service.list_datasets(session, project, limit, offset)


@router.get("/{dataset_id}", operation_id="get_dataset", responses=error_responses(404))
def get_dataset(dataset_id: str, project: CurrentProject, session: SessionDep) -> DatasetOut:
    return DatasetOut.model_validate(service.get_dataset(session, project, dataset_id))


@router.get(
    "/{dataset_id}/profile",
    operation_id="get_dataset_profile",
    responses=error_responses(404, 409),
)
def get_dataset_profile(
    dataset_id: str,
    project: CurrentProject,
    session: SessionDep,
    store: StoreDep,
    target: Annotated[str | None, Query(max_length=200)] = None,
) -> DatasetProfileOut:
    """Per-column statistics, duplicate rows and warnings; with `target`, its class balance or
    distribution and each feature's correlation or mutual information with it. A dataset of
    arrays has no profile (409)."""
    return service.get_profile(session, store, project, dataset_id, target)
