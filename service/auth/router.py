from __future__ import annotations

from fastapi import APIRouter

from service.auth import service
from service.auth.dependencies import CurrentProject, KeyOwnersDep
from service.auth.schemas import KeyCreate, KeyCreated, KeyList, KeyOut
from service.core.deps import SessionDep
from service.core.schemas import error_responses

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
