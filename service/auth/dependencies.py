from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from service.auth.service import (
    ADMIN_RATE_KEY,
    KeyOwner,
    authenticate,
    check_admin_key,
    check_rate,
    find_key_owner,
    hash_secret,
)
from service.auth.tables import Project
from service.core.deps import SessionDep
from service.core.lookups import RecentLookups

bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer ty_...`")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def current_project(request: Request, session: SessionDep, credentials: Credentials) -> Project:
    project, key = authenticate(session, credentials.credentials if credentials else None)
    check_rate(request.app.state.rate_limiter, key.id)
    return project


def require_admin(request: Request, credentials: Credentials) -> None:
    check_admin_key(
        request.app.state.settings.admin_key, credentials.credentials if credentials else None
    )
    check_rate(request.app.state.rate_limiter, ADMIN_RATE_KEY)


def get_key_owners(request: Request) -> RecentLookups[str, KeyOwner]:
    return request.app.state.key_owners


KeyOwnersDep = Annotated[RecentLookups[str, KeyOwner], Depends(get_key_owners)]

# What a route that authenticates with `remembered_key_owner` declares in OpenAPI.
BEARER_SECURITY = [{"HTTPBearer": []}]


async def remembered_key_owner(request: Request) -> KeyOwner:
    """The predict path's caller: a key seen recently is not looked up again (see
    service/core/lookups.py); a new one is, off the event loop, with a session of its own.
    Called by the route itself, not as a dependency (see service/models/router.py)."""
    secret = bearer_secret(request)
    digest = hash_secret(secret) if secret else ""
    owners: RecentLookups[str, KeyOwner] = request.app.state.key_owners
    owner = await owners.remembered(
        digest, lambda: run_in_threadpool(_find_key_owner, request, secret)
    )
    check_rate(request.app.state.rate_limiter, owner.key_id)
    return owner


def bearer_secret(request: Request) -> str | None:
    """The key in `Authorization: Bearer <key>`, read as `bearer` reads it (None when absent or
    another scheme), without the credentials model it builds: predict runs this per request."""
    scheme, _, secret = (request.headers.get("authorization") or "").partition(" ")
    secret = secret.strip()
    return secret if secret and scheme.lower() == "bearer" else None


def _find_key_owner(request: Request, secret: str | None) -> KeyOwner:
    with request.app.state.session_factory() as session:
        return find_key_owner(session, secret)


CurrentProject = Annotated[Project, Depends(current_project)]
# The admin routes' gate: the service's admin key, never a project's.
Admin = Depends(require_admin)
