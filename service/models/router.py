"""Routes of the model registry. A model reference may hold `/` (`{name}/versions/{n}`), so
the routes with a fixed suffix come before the catch-all `GET /{ref}`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from engine.export import ExportFormat
from engine.spec import MODEL_NAME_PATTERN
from service.auth.dependencies import BEARER_SECURITY, CurrentProject, remembered_key_owner
from service.auth.service import KeyOwner
from service.core.deps import SessionDep, StoreDep
from service.core.params import Limit, Offset, Ref
from service.core.schemas import Page, error_responses
from service.models import service
from service.models.payloads import decode_predict_body, predict_request_body
from service.models.schemas import (
    AliasOut,
    AliasRequest,
    EncodeResponse,
    ExplainRequest,
    ExplainResponse,
    ModelNameOut,
    ModelOut,
    ModelVersionOut,
    PredictResponse,
    SampleRequest,
    SampleResponse,
)
from service.models.serving import ServingService

# Every route here needs a key and validates its input.
router = APIRouter(prefix="/v1/models", tags=["models"], responses=error_responses(401, 422))
# Predict and encode, the hot path: the predict lane (lane.py) runs these routes' functions
# before the app's middleware and router; the routes document them and serve them under a
# root_path. Included first, as FastAPI tries routes in order.
predict_router = APIRouter(
    prefix="/v1/models", tags=["models"], responses=error_responses(401, 422)
)


def get_serving(request: Request) -> ServingService:
    return request.app.state.serving


ServingDep = Annotated[ServingService, Depends(get_serving)]

# Bodies past this size are decoded on a worker thread, not on the event loop.
INLINE_DECODE_BYTES = 64 * 1024


@dataclass
class PredictCall:
    caller: KeyOwner
    instances: list[Any]
    serving: ServingService


async def predict_call(request: Request) -> PredictCall:
    """Everything predict and encode need, gathered in one dependency, which the predict lane
    calls itself. The key comes first, so an unknown caller's body is never read; OpenAPI
    hears of the key through the routes' `openapi_extra`."""
    caller = await remembered_key_owner(request)
    body = await request.body()
    content_type = request.headers.get("content-type")
    if len(body) <= INLINE_DECODE_BYTES:
        instances = decode_predict_body(body, content_type)
    else:
        instances = await run_in_threadpool(decode_predict_body, body, content_type)
    return PredictCall(caller, instances, request.app.state.serving)


PredictCallDep = Annotated[PredictCall, Depends(predict_call)]
# The request body and the key, which `predict_call` reads itself, as OpenAPI shows them.
PREDICT_OPENAPI = {**predict_request_body(), "security": BEARER_SECURITY}


@router.get("", operation_id="list_models")
def list_models(
    project: CurrentProject, session: SessionDep, limit: Limit = 50, offset: Offset = 0
) -> Page[ModelNameOut]:
    """Registered model names, the most recently trained first."""
    return service.list_models(session, project, limit, offset)


@router.get("/{name}/versions", operation_id="list_model_versions", responses=error_responses(404))
def list_model_versions(
    name: str, project: CurrentProject, session: SessionDep, limit: Limit = 50, offset: Offset = 0
) -> Page[ModelVersionOut]:
    """A name's versions, the newest first, with their test metrics."""
    return service.list_versions(session, project, name, limit, offset)


@router.put(
    "/{name}/aliases/{alias}", operation_id="set_model_alias", responses=error_responses(404, 409)
)
def set_model_alias(
    name: str,
    alias: Annotated[str, Path(min_length=1, max_length=200, pattern=MODEL_NAME_PATTERN)],
    body: AliasRequest,
    project: CurrentProject,
    session: SessionDep,
    serving: ServingDep,
) -> AliasOut:
    """Point an alias (`production`, `staging`) at a version; `{name}@{alias}` follows it."""
    return service.set_alias(session, project, name, alias, body.version, serving.refs.clear)


@router.delete(
    "/{name}/aliases/{alias}",
    operation_id="delete_model_alias",
    status_code=204,
    responses=error_responses(404),
)
def delete_model_alias(
    name: str, alias: str, project: CurrentProject, session: SessionDep, serving: ServingDep
) -> Response:
    service.delete_alias(session, project, name, alias, serving.refs.clear)
    return Response(status_code=204)


# The predict path answers with JSON bytes it wrote itself (service/models/serving.py);
# `response_model` documents their shape.
@predict_router.post(
    "/{ref:path}/predict",
    operation_id="predict",
    response_model=PredictResponse,
    response_model_exclude_none=True,
    responses=error_responses(404, 413),
    openapi_extra=PREDICT_OPENAPI,
)
async def predict(ref: Ref, call: PredictCallDep) -> Response:
    """Predict from raw rows; the model replays its own preprocessing. The body may be
    `{"instances": [...]}`, an MLflow scoring payload or a CSV with a header row."""
    content = await call.serving.predict(call.caller.project_id, ref, call.instances)
    return Response(content, media_type="application/json")


@predict_router.post(
    "/{ref:path}/encode",
    operation_id="encode",
    response_model=EncodeResponse,
    responses=error_responses(404, 409, 413),
    openapi_extra=PREDICT_OPENAPI,
)
async def encode(ref: Ref, call: PredictCallDep) -> Response:
    """Embeddings (the latent vector) from an autoencoder model, one per instance."""
    content = await call.serving.encode(call.caller.project_id, ref, call.instances)
    return Response(content, media_type="application/json")


@router.post(
    "/{ref:path}/explain",
    operation_id="explain_model",
    response_model_exclude_none=True,
    responses=error_responses(404, 409),
)
async def explain_model(
    ref: Ref, body: ExplainRequest, project: CurrentProject, serving: ServingDep
) -> ExplainResponse:
    """How much each input moved one prediction, by integrated gradients from a baseline of
    the training data: per raw column (tables), per time step (sequences, forecasting
    windows) or a saliency map (images). Autoencoders are not explained (409)."""
    answer = await serving.explain(project.id, ref, body.instances, body.target, body.n_steps)
    return ExplainResponse.model_validate(answer)


@router.get(
    "/{ref:path}/export",
    operation_id="export_model",
    response_class=Response,
    responses={
        **error_responses(404, 409),
        200: {"content": {"application/octet-stream": {}}, "description": "The model file"},
    },
)
def export_model(
    ref: Ref,
    project: CurrentProject,
    session: SessionDep,
    store: StoreDep,
    format: Annotated[ExportFormat, Query(description="onnx, torchscript or safetensors")],
) -> Response:
    """The network as one file (preprocessed tensor in, raw outputs out, any batch size), with
    the model's preprocess.json inside it."""
    content, media_type, filename = service.export(session, store, project, ref, format)
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    return Response(content, media_type=media_type, headers=headers)


@router.post(
    "/{ref:path}/sample",
    operation_id="sample_model",
    response_model_exclude_none=True,
    responses=error_responses(404, 409),
)
async def sample_model(
    ref: Ref, body: SampleRequest, project: CurrentProject, serving: ServingDep
) -> SampleResponse:
    """Seeded examples from a GAN (task generation): `n` rows of raw column values, or `n`
    PNG images (base64); a conditional GAN's examples all take `label` when one is given."""
    made = await serving.sample(project.id, ref, body.n, body.seed, body.label)
    return SampleResponse.model_validate(made)


@router.get("/{ref:path}", operation_id="get_model", responses=error_responses(404))
def get_model(ref: Ref, project: CurrentProject, session: SessionDep) -> ModelOut:
    """One version's record."""
    return ModelOut.model_validate(service.resolve_model_ref(session, project.id, ref))
