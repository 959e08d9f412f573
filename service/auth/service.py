"""API keys: created with a project, stored as SHA-256 hashes, checked on every request."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import SecretStr
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.auth import repository
from service.auth.rate_limit import RateLimiter, retry_after_header
from service.auth.tables import ApiKey, Project
from service.core.database import utcnow
from service.core.deps import after_commit
from service.core.errors import Conflict, Forbidden, RateLimited, Unauthorized, found

KEY_PREFIX = "ty_"


def hash_secret(secret: str) -> str:
    # Keys are 256 random bits, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def create_project(session: Session, name: str, secret: str | None = None) -> tuple[Project, str]:
    """A new project and its first key; the secret is returned once and never stored."""
    project = repository.add_project(session, name)
    secret = secret or new_secret()
    repository.add_key(session, project, "default", secret[:10], hash_secret(secret))
    return project, secret


def create_named_project(session: Session, name: str) -> tuple[Project, ApiKey, str]:
    """The admin's `POST /v1/projects`: a project of a name no other has, and its first key."""
    if repository.get_project_by_name(session, name) is not None:
        raise _duplicate_name(name)
    try:
        project = repository.add_project(session, name)
    except IntegrityError as exc:
        # The same name created meanwhile by another request: the unique index decided.
        raise _duplicate_name(name) from exc
    key, secret = create_key(session, project, "default")
    return project, key, secret


def _duplicate_name(name: str) -> Conflict:
    reason = f"a project named {name!r} exists already"
    return Conflict(f"name: {reason}", details=[{"field": "name", "reason": reason}])


def list_projects(session: Session, limit: int, offset: int) -> tuple[list[Project], int]:
    return repository.list_projects(session, limit, offset)


def create_project_key(session: Session, project_id: str, name: str) -> tuple[ApiKey, str]:
    project = found(repository.get_project(session, project_id), "project", project_id)
    return create_key(session, project, name)


ADMIN_RATE_KEY = "admin"


def check_admin_key(configured: SecretStr | None, secret: str | None) -> None:
    """The admin routes' gate. The admin key is no project's key: it is compared with the
    configured one (in constant time), never looked up among the projects' keys."""
    if configured is None:
        raise Forbidden(
            "the admin key is not configured: set TRAINYARD_ADMIN_KEY on the service to "
            "create projects over HTTP",
            code="admin_key_not_configured",
        )
    if not secret:
        raise Unauthorized("missing admin key: send 'Authorization: Bearer <admin key>'")
    if not hmac.compare_digest(secret.encode(), configured.get_secret_value().encode()):
        raise Forbidden("this route needs the service's admin key; a project's key cannot call it")


def authenticate(session: Session, secret: str | None) -> tuple[Project, ApiKey]:
    if not secret:
        raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'")
    key = repository.get_active_key(session, hash_secret(secret))
    if key is None:
        raise Unauthorized("invalid or revoked API key")
    project = repository.get_project(session, key.project_id)
    if project is None:
        raise Unauthorized("invalid or revoked API key")
    return project, key


@dataclass(frozen=True)
class KeyOwner:
    """Whose key a request carries: enough to scope it, with no database row attached, so
    the predict path can keep it in memory (service/core/lookups.py)."""

    project_id: str
    key_id: str


def find_key_owner(session: Session, secret: str | None) -> KeyOwner:
    project, key = authenticate(session, secret)
    return KeyOwner(project_id=project.id, key_id=key.id)


def check_rate(limiter: RateLimiter, key_id: str) -> None:
    wait = limiter.acquire(key_id)
    if wait > 0:
        raise RateLimited(
            f"too many requests for this API key; retry in {wait:.1f} s",
            retry_after=retry_after_header(wait),
        )


def ensure_bootstrap_key(session: Session, secret: str | None) -> str:
    """Make sure the first project exists and accepts `secret` (a new key when None)."""
    project = repository.first_project(session) or repository.add_project(session, "default")
    secret = secret or new_secret()
    if repository.get_key_by_hash(session, hash_secret(secret)) is None:
        repository.add_key(session, project, "bootstrap", secret[:10], hash_secret(secret))
    return secret


def create_key(session: Session, project: Project, name: str) -> tuple[ApiKey, str]:
    """A further key for `project`; the secret is returned once and never stored."""
    secret = new_secret()
    return repository.add_key(session, project, name, secret[:10], hash_secret(secret)), secret


def list_keys(session: Session, project: Project) -> list[ApiKey]:
    return repository.list_keys(session, project.id)


def revoke_key(
    session: Session, project: Project, key_id: str, forget_owners: Callable[[], None]
) -> ApiKey:
    """Refused from the next request on. Revoking twice is not an error: the key stays off.
    The last active key cannot be revoked, or nobody could reach the project again.
    `forget_owners` runs once the revocation is committed: it clears the key lookups the
    predict path remembers."""
    key = found(repository.get_key(session, project.id, key_id), "API key", key_id)
    if key.revoked_at is None:
        active = [k for k in repository.list_keys(session, project.id) if k.revoked_at is None]
        if len(active) == 1:
            raise Conflict("this is the project's last active key; create another first")
        key.revoked_at = utcnow()
        session.flush()
        after_commit(session, forget_owners)
    return key
