from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.auth.service import authenticate, check_rate
from service.auth.tables import Project
from service.core.deps import SessionDep

bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer ty_...`")


def current_project(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Project:
    project, key = authenticate(session, credentials.credentials if credentials else None)
    check_rate(request.app.state.rate_limiter, key)
    return project


CurrentProject = Annotated[Project, Depends(current_project)]
