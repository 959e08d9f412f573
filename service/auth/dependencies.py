from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.auth.service import authenticate
from service.auth.tables import Project
from service.core.deps import SessionDep

bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer ty_...`")


def current_project(
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Project:
    return authenticate(session, credentials.credentials if credentials else None)


CurrentProject = Annotated[Project, Depends(current_project)]
