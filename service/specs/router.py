from __future__ import annotations

from fastapi import APIRouter

from service.auth.dependencies import CurrentProject
from service.core.deps import SessionDep, SettingsDep, StoreDep
from service.core.schemas import error_responses
from service.specs import service
from service.specs.schemas import SpecCheckOut, SpecCheckRequest

router = APIRouter(prefix="/v1/specs", tags=["specs"], responses=error_responses(401, 422))


@router.post("/validate", operation_id="validate_spec", responses=error_responses(404))
def validate_spec(
    body: SpecCheckRequest,
    project: CurrentProject,
    session: SessionDep,
    store: StoreDep,
    settings: SettingsDep,
) -> SpecCheckOut:
    """Dry-run a spec against a dataset: the layer table and parameter count, or a 422 that
    names the field and the reason. `POST /v1/jobs` runs the same check."""
    _, spec, summary = service.check_spec(
        session,
        store,
        settings,
        project,
        body.dataset_id,
        body.spec,
        validation_dataset_id=body.validation_dataset_id,
        test_dataset_id=body.test_dataset_id,
    )
    return service.describe(spec, summary)
