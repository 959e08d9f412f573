"""API keys: created with a project, stored as SHA-256 hashes, checked on every request."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy.orm import Session

from service.auth import repository
from service.auth.tables import Project
from service.core.errors import Unauthorized

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


def authenticate(session: Session, secret: str | None) -> Project:
    if not secret:
        raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'")
    key = repository.get_active_key(session, hash_secret(secret))
    if key is None:
        raise Unauthorized("invalid or revoked API key")
    project = repository.get_project(session, key.project_id)
    if project is None:
        raise Unauthorized("invalid or revoked API key")
    return project


def ensure_bootstrap_key(session: Session, secret: str | None) -> str:
    """Make sure the first project exists and accepts `secret` (a new key when None)."""
    project = repository.first_project(session) or repository.add_project(session, "default")
    secret = secret or new_secret()
    if repository.get_key_by_hash(session, hash_secret(secret)) is None:
        repository.add_key(session, project, "bootstrap", secret[:10], hash_secret(secret))
    return secret
