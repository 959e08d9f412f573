"""`Idempotency-Key` on create routes: the same key twice, in one project, creates one resource.

A create route asks `earlier_resource` first and answers with that resource when there is one.
Otherwise it does its work and `claim`s the key for the new id before it adds the resource row,
in the same transaction: the key and the resource are committed together or not at all, so a
request that fails leaves its key free for the retry.
"""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.idempotency import repository
from service.idempotency.tables import IdempotencyKey

JOB = "job"
DATASET = "dataset"
BATCH_PREDICTION = "batch_prediction"
EVALUATION = "evaluation"


def earlier_resource(session: Session, project_id: str, kind: str, key: str | None) -> str | None:
    """The id of the `kind` this project's `key` already created, or None."""
    if key is None:
        return None
    return repository.resource_id(session, project_id, kind, key)


def claim(
    session: Session, project_id: str, kind: str, key: str | None, resource_id: str
) -> str | None:
    """Record that `key` creates `resource_id`. None when it does (or there is no key); the
    other resource's id when a concurrent request with the same key committed first.

    Losing rolls the session's transaction back, so call it before the resource row is added:
    then nothing of this request is lost but the resource it must not create. (A savepoint
    would be narrower, but SQLite's driver commits when the outermost savepoint is released.)
    """
    if key is None:
        return None
    try:
        repository.add(
            session,
            IdempotencyKey(project_id=project_id, kind=kind, key=key, resource_id=resource_id),
        )
    except IntegrityError:
        session.rollback()
        winner = repository.resource_id(session, project_id, kind, key)
        if winner is None:  # not our key that clashed: a real integrity error
            raise
        return winner
    return None
