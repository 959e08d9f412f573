from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from service.core import metrics

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str
    checks: dict[str, str] = {}


@router.get("/healthz", operation_id="healthz")
def healthz() -> Health:
    """The process is alive."""
    return Health(status="ok")


@router.get("/readyz", operation_id="readyz", responses={503: {"model": Health}})
async def readyz(request: Request) -> Health:
    """The database, the broker and the store are reachable."""
    state = request.app.state

    def database() -> None:
        with state.session_factory() as session:
            session.execute(text("SELECT 1"))

    checks: dict[str, str] = {}
    for name, probe in (
        ("database", database),
        ("broker", state.queue.ping),
        ("store", state.store.ping),
    ):
        try:
            await run_in_threadpool(probe)
            checks[name] = "ok"
        except Exception as exc:
            checks[name] = f"unreachable: {type(exc).__name__}: {exc}"[:300]
    ready = all(v == "ok" for v in checks.values())
    body = Health(status="ok" if ready else "unavailable", checks=checks)
    return body if ready else JSONResponse(body.model_dump(), status_code=503)


# Prometheus's text format, not part of the JSON API: kept out of the OpenAPI document.
@router.get("/metrics", include_in_schema=False)
async def prometheus_metrics(request: Request) -> Response:
    """The operator's metrics (no key, as /healthz): counts and timings, no project data."""
    body = await run_in_threadpool(metrics.render, request.app.state.metrics_registry)
    return Response(body, media_type=metrics.CONTENT_TYPE)
