from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

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
