"""Models: what succeeded jobs produced, registered as versions of a name, with aliases.

A model is named by a reference: its id (`mdl_...`), `{name}/versions/{n}`, or
`{name}@{alias}`. Moving an alias takes effect on the next request (predictions are served by
service/models/serving.py, which forgets what it remembered of aliases when one moves).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine.artifacts import MODEL_FILES
from engine.export import ExportFailed, export_model
from engine.spec import Spec
from service.auth.tables import Project
from service.core.database import utcnow
from service.core.deps import after_commit
from service.core.errors import Conflict, NotFound
from service.core.schemas import Page
from service.core.store import Store
from service.models import repository
from service.models.schemas import (
    AliasOut,
    ModelNameOut,
    ModelVersionOut,
    SpecSummary,
)
from service.models.tables import Model, ModelAlias, model_file_key

_VERSION_REF = re.compile(r"^(?P<name>[^/@]+)/versions/(?P<version>[0-9]{1,9})$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def registered_name(spec: Spec, dataset_name: str) -> str:
    """The name a job's model is registered under: the spec's `model_name`, else the
    dataset's name reduced to the characters a model name may hold."""
    if spec.model_name is not None:
        return spec.model_name
    name = _UNSAFE.sub("-", dataset_name).lstrip("._-")[:200]
    return name or "model"


def resolve_model_ref(session: Session, project_id: str, ref: str) -> Model:
    """The model a reference names: `mdl_...`, `{name}/versions/{n}` or `{name}@{alias}`."""
    if "@" in ref:
        name, _, alias = ref.partition("@")
        model = repository.get_by_alias(session, project_id, name, alias)
    elif match := _VERSION_REF.match(ref):
        model = repository.get_version(session, project_id, match["name"], int(match["version"]))
    else:
        model = repository.get(session, project_id, ref)
    if model is None:
        raise NotFound(
            f"model {ref!r} not found; a model is named by its id (mdl_...), "
            "{name}/versions/{n} or {name}@{alias}"
        )
    return model


def resolve_scoring_model(session: Session, project_id: str, ref: str) -> Model:
    """The model a reference names, for work that runs it over a dataset (batch predictions,
    evaluations): a generator (task generation) scores nothing, a 409."""
    model = resolve_model_ref(session, project_id, ref)
    if model.task == "generation":
        raise Conflict(
            f"model {ref!r} is a generator (task generation): it makes rows with "
            "POST /v1/models/{ref}/sample and scores none",
            code="unsupported_model",
        )
    return model


def list_models(session: Session, project: Project, limit: int, offset: int) -> Page[ModelNameOut]:
    rows = repository.list_names(session, project.id, limit, offset)
    aliases: dict[str, dict[str, int]] = {}
    for alias in repository.aliases(session, project.id, [row.name for row in rows]):
        aliases.setdefault(alias.name, {})[alias.alias] = alias.version
    return Page[ModelNameOut](
        items=[
            ModelNameOut(
                name=row.name,
                latest_version=row.latest_version,
                versions=row.versions,
                aliases=aliases.get(row.name, {}),
                created_at=row.created_at,
                updated_at=row.updated_at,
            )
            for row in rows
        ],
        total=repository.count_names(session, project.id),
        limit=limit,
        offset=offset,
    )


def list_versions(
    session: Session, project: Project, name: str, limit: int, offset: int
) -> Page[ModelVersionOut]:
    total = repository.count_versions(session, project.id, name)
    if total == 0:
        raise NotFound(f"model name {name!r} not found")
    aliases: dict[int, list[str]] = {}
    for alias in repository.aliases(session, project.id, [name]):
        aliases.setdefault(alias.version, []).append(alias.alias)
    items = []
    for model, job in repository.list_versions(session, project.id, name, limit, offset):
        spec = job.spec or {}
        family = (spec.get("model") or {}).get("family")
        features = spec.get("features")
        items.append(
            ModelVersionOut(
                id=model.id,
                name=model.name,
                version=model.version,
                aliases=aliases.get(model.version, []),
                job_id=model.job_id,
                dataset_id=model.dataset_id,
                test_metrics=((job.report or {}).get("evaluation") or {}).get("metrics") or {},
                spec=SpecSummary(
                    task=model.task,
                    family=family,
                    features=len(features) if isinstance(features, list) else None,
                ),
                created_at=model.created_at,
            )
        )
    return Page[ModelVersionOut](items=items, total=total, limit=limit, offset=offset)


def set_alias(
    session: Session,
    project: Project,
    name: str,
    alias: str,
    version: int,
    forget_refs: Callable[[], None],
) -> AliasOut:
    """`forget_refs` runs once the change is committed: it clears the references the predict
    path remembers, so `{name}@{alias}` follows on the next request."""
    model = repository.get_version(session, project.id, name, version)
    if model is None:
        raise NotFound(f"model {name!r} has no version {version}")
    try:
        row = _point_alias(session, project, name, alias, version)
    except IntegrityError as exc:
        # Two first settings of one alias at once: the loser is told to try again.
        raise Conflict(f"alias {alias!r} of {name!r} was set meanwhile; try again") from exc
    after_commit(session, forget_refs)
    return AliasOut(
        name=name, alias=alias, version=version, model_id=model.id, updated_at=row.updated_at
    )


def _point_alias(
    session: Session, project: Project, name: str, alias: str, version: int
) -> ModelAlias:
    row = repository.get_alias(session, project.id, name, alias)
    if row is None:
        return repository.add_alias(
            session, ModelAlias(project_id=project.id, name=name, alias=alias, version=version)
        )
    row.version = version
    row.updated_at = utcnow()
    session.flush()
    return row


def delete_alias(
    session: Session, project: Project, name: str, alias: str, forget_refs: Callable[[], None]
) -> None:
    row = repository.get_alias(session, project.id, name, alias)
    if row is None:
        raise NotFound(f"model {name!r} has no alias {alias!r}")
    repository.delete_alias(session, row)
    after_commit(session, forget_refs)


def export(
    session: Session, store: Store, project: Project, ref: str, fmt: str
) -> tuple[bytes, str, str]:
    """The model the reference names, as one file: (content, media type, file name)."""
    model = resolve_model_ref(session, project.id, ref)
    files = {name: store.read_bytes(model_file_key(model.id, name)) for name in MODEL_FILES}
    try:
        content, media_type, filename = export_model(files, fmt)
    except ExportFailed as exc:
        raise Conflict(exc.message, code="export_failed") from exc
    return content, media_type, f"{model.name}-v{model.version}-{filename}"
