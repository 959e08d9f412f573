from __future__ import annotations

from fastapi import APIRouter

from service.auth.dependencies import Admin
from service.core.deps import SessionDep, SettingsDep
from service.core.schemas import error_responses
from service.fleet import service
from service.fleet.schemas import WorkerList, WorkerOut

# The operator's view of the fleet, behind the admin key: host names are no project's data.
router = APIRouter(
    prefix="/v1/workers",
    tags=["workers"],
    dependencies=[Admin],
    responses=error_responses(401, 403),
)


@router.get("", operation_id="list_workers")
def list_workers(session: SessionDep, settings: SettingsDep) -> WorkerList:
    """The workers seen alive in the last two leases: their queues and CUDA devices."""
    live = service.live_workers(session, settings)
    return WorkerList(items=[WorkerOut.model_validate(worker) for worker in live])
