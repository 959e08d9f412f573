from __future__ import annotations

from fastapi import APIRouter

from service.auth import service
from service.auth.dependencies import Admin, CurrentProject, KeyOwnersDep
from service.auth.schemas import (
    KeyCreate,
    KeyCreated,
    KeyList,
    KeyOut,
    ProjectCreate,
    ProjectCreated,
    ProjectOut,
)
from service.core.deps import SessionDep
from service.core.params import Limit, Offset
from service.core.schemas import Page, error_responses

router = APIRouter(prefix="/v1/keys", tags=["keys"], responses=error_responses(401, 422))


@router.post("", status_code=201, operation_id="create_key")
def create_key(body: KeyCreate, project: CurrentProject, session: SessionDep) -> KeyCreated:
    """A new key for the caller's project. The secret is in this response only."""
    key, secret = service.create_key(session, project, body.name)
    return KeyCreated(**KeyOut.model_validate(key).model_dump(), secret=secret)


@router.get("", operation_id="list_keys")
def list_keys(project: CurrentProject, session: SessionDep) -> KeyList:
    return KeyList(items=[KeyOut.model_validate(k) for k in service.list_keys(session, project)])


@router.delete("/{key_id}", operation_id="revoke_key", responses=error_responses(404, 409))
def revoke_key(
    key_id: str, project: CurrentProject, session: SessionDep, owners: KeyOwnersDep
) -> KeyOut:
    """Revoke a key: it is refused from the next request on."""
    return KeyOut.model_validate(service.revoke_key(session, project, key_id, owners.clear))


# The admin's routes: the service's admin key (TRAINYARD_ADMIN_KEY), never a project's key.
projects_router = APIRouter(
    prefix="/v1/projects",
    tags=["projects"],
    dependencies=[Admin],
    responses=error_responses(401, 403, 422),
)


@projects_router.post(
    "", status_code=201, operation_id="create_project", responses=error_responses(409)
)
def create_project(body: ProjectCreate, session: SessionDep) -> ProjectCreated:
    """A new project and its first key. The key's secret is in this response only."""
    project, key, secret = service.create_named_project(session, body.name)
    return ProjectCreated(
        **ProjectOut.model_validate(project).model_dump(),
        key=KeyCreated(**KeyOut.model_validate(key).model_dump(), secret=secret),
    )


@projects_router.get("", operation_id="list_projects")
def list_projects(session: SessionDep, limit: Limit = 50, offset: Offset = 0) -> Page[ProjectOut]:
    projects, total = service.list_projects(session, limit, offset)
    items = [ProjectOut.model_validate(p) for p in projects]
    return Page[ProjectOut](items=items, total=total, limit=limit, offset=offset)


@projects_router.post(
    "/{project_id}/keys",
    status_code=201,
    operation_id="create_project_key",
    responses=error_responses(404),
)
def create_project_key(project_id: str, body: KeyCreate, session: SessionDep) -> KeyCreated:
    """A further key for a project (its own keys are then managed under `/v1/keys`)."""
    key, secret = service.create_project_key(session, project_id, body.name)
    return KeyCreated(**KeyOut.model_validate(key).model_dump(), secret=secret)
