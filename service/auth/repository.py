from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.auth.tables import ApiKey, Project


def get_active_key(session: Session, secret_hash: str) -> ApiKey | None:
    return session.scalar(
        select(ApiKey).where(ApiKey.secret_hash == secret_hash, ApiKey.revoked_at.is_(None))
    )


def get_key_by_hash(session: Session, secret_hash: str) -> ApiKey | None:
    return session.scalar(select(ApiKey).where(ApiKey.secret_hash == secret_hash))


def get_project(session: Session, project_id: str) -> Project | None:
    return session.get(Project, project_id)


def get_project_by_name(session: Session, name: str) -> Project | None:
    return session.scalar(select(Project).where(Project.name == name))


def list_projects(session: Session, limit: int, offset: int) -> tuple[list[Project], int]:
    rows = session.scalars(
        select(Project).order_by(Project.created_at, Project.id).limit(limit).offset(offset)
    )
    return list(rows), session.scalar(select(func.count()).select_from(Project)) or 0


def first_project(session: Session) -> Project | None:
    return session.scalar(select(Project).order_by(Project.created_at).limit(1))


def add_project(session: Session, name: str) -> Project:
    project = Project(name=name)
    session.add(project)
    session.flush()
    return project


def add_key(session: Session, project: Project, name: str, prefix: str, secret_hash: str) -> ApiKey:
    key = ApiKey(project_id=project.id, name=name, prefix=prefix, secret_hash=secret_hash)
    session.add(key)
    session.flush()
    return key


def list_keys(session: Session, project_id: str) -> list[ApiKey]:
    return list(
        session.scalars(
            select(ApiKey).where(ApiKey.project_id == project_id).order_by(ApiKey.created_at)
        )
    )


def get_key(session: Session, project_id: str, key_id: str) -> ApiKey | None:
    return session.scalar(
        select(ApiKey).where(ApiKey.project_id == project_id, ApiKey.id == key_id)
    )
