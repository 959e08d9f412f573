"""Evaluations: check that a model can score a stored labelled dataset, queue the scoring,
show it, list a model's evaluations (runs compared on the same hold-out), cancel it."""

from __future__ import annotations

import json

from sqlalchemy.orm import Session

from engine.artifacts import PREPROCESS_FILE, SPEC_FILE
from engine.evaluation import DataOutline, scoring_mismatch
from engine.pipeline import pipeline_from_dict
from engine.spec import Spec
from service.auth.tables import Project
from service.core.database import new_id, utcnow
from service.core.deps import after_commit
from service.core.errors import found, invalid_field
from service.core.leases import QUEUED, request_cancel
from service.core.queue import EVALUATE_MODEL_TASK, JobQueue
from service.core.schemas import Page
from service.core.settings import Settings
from service.core.store import Store
from service.datasets.service import get_dataset
from service.datasets.tables import Dataset
from service.evaluations.repository import evaluations
from service.evaluations.schemas import EvaluationError, EvaluationOut
from service.evaluations.tables import Evaluation
from service.idempotency import service as idempotency
from service.models import repository as model_repository
from service.models.service import resolve_model_ref, resolve_scoring_model
from service.models.tables import Model, model_file_key


def submit(
    session: Session,
    queue: JobQueue,
    store: Store,
    settings: Settings,
    project: Project,
    ref: str,
    dataset_id: str,
    idempotency_key: str | None = None,
) -> tuple[Evaluation, bool]:
    """Resolve the model now, check it can score every row kind of the dataset (its columns
    and their types, or its arrays' shape, and labels), then queue: the evaluation and True;
    or the one this project's `idempotency_key` created before and False."""
    kind = idempotency.EVALUATION
    earlier = idempotency.earlier_resource(session, project.id, kind, idempotency_key)
    if earlier is not None:
        return get(session, project, earlier), False
    model = resolve_scoring_model(session, project.id, ref)
    dataset = get_dataset(session, project, dataset_id)
    spec = Spec.model_validate_json(store.read_bytes(model_file_key(model.id, SPEC_FILE)))
    pipeline = pipeline_from_dict(
        json.loads(store.read_bytes(model_file_key(model.id, PREPROCESS_FILE)))
    )
    # From the dataset's record: a create reads no rows, whatever the dataset's size.
    reason = scoring_mismatch(spec, pipeline, dataset_outline(dataset))
    if reason is not None:
        raise invalid_field(
            "dataset_id", f"model {ref!r} cannot score it: {reason}", code="dataset_mismatch"
        )
    evaluation_id = new_id("ev")
    winner = idempotency.claim(session, project.id, kind, idempotency_key, evaluation_id)
    if winner is not None:
        return get(session, project, winner), False
    evaluation = evaluations.add(
        session,
        Evaluation(
            id=evaluation_id,
            project_id=project.id,
            model_id=model.id,
            dataset_id=dataset.id,
            status=QUEUED,
            queue=settings.default_queue,
            # Sent right after the commit; the reconciler sends it again if it is lost.
            enqueued_at=utcnow(),
        ),
    )
    after_commit(
        session, lambda: queue.enqueue(EVALUATE_MODEL_TASK, evaluation.id, evaluation.queue)
    )
    return evaluation, True


def get(session: Session, project: Project, evaluation_id: str) -> Evaluation:
    row = evaluations.get(session, project.id, evaluation_id)
    return found(row, evaluations.noun, evaluation_id)


def list_page(
    session: Session,
    project: Project,
    limit: int,
    offset: int,
    model_id: str | None = None,
    dataset_id: str | None = None,
    status: str | None = None,
) -> Page[EvaluationOut]:
    filters = {"model_id": model_id, "dataset_id": dataset_id, "status": status}
    rows = evaluations.filtered_page(session, project.id, limit, offset, **filters)
    model_ids = {row.model_id for row in rows}
    models = {m.id: m for m in model_repository.get_many(session, project.id, model_ids)}
    return Page[EvaluationOut](
        items=[evaluation_out(row, models[row.model_id]) for row in rows],
        total=evaluations.filtered_count(session, project.id, **filters),
        limit=limit,
        offset=offset,
    )


def list_for_model(
    session: Session,
    project: Project,
    ref: str,
    dataset_id: str | None,
    limit: int,
    offset: int,
) -> Page[EvaluationOut]:
    """The evaluations of the model a reference names now (one version), newest first."""
    model = resolve_model_ref(session, project.id, ref)
    return list_page(session, project, limit, offset, model_id=model.id, dataset_id=dataset_id)


def cancel(session: Session, project: Project, evaluation_id: str) -> Evaluation:
    """A queued evaluation is cancelled at once; a running one before it scores."""
    evaluation = get(session, project, evaluation_id)
    request_cancel(evaluation, evaluations.noun)
    session.flush()
    return evaluation


def out(session: Session, evaluation: Evaluation) -> EvaluationOut:
    model = model_repository.get(session, evaluation.project_id, evaluation.model_id)
    assert model is not None  # models are never deleted
    return evaluation_out(evaluation, model)


def evaluation_out(evaluation: Evaluation, model: Model) -> EvaluationOut:
    error = (
        EvaluationError(code=evaluation.error_code, message=evaluation.error_message or "")
        if evaluation.error_code
        else None
    )
    return EvaluationOut(
        id=evaluation.id,
        model_id=evaluation.model_id,
        model_name=model.name,
        model_version=model.version,
        dataset_id=evaluation.dataset_id,
        status=evaluation.status,
        attempts=evaluation.attempts,
        cancel_requested=evaluation.cancel_requested,
        report=evaluation.report,
        error=error,
        created_at=evaluation.created_at,
        started_at=evaluation.started_at,
        finished_at=evaluation.finished_at,
    )


def dataset_outline(dataset: Dataset) -> DataOutline:
    """What checking a model against the dataset needs, from its record (ingest's summary
    of its columns, or of its arrays)."""
    if dataset.kind == "arrays":
        summary = dataset.arrays or {}
        target = (summary.get("target") or {}).get("type")
        return DataOutline(summary.get("kind", ""), list(summary.get("shape") or []), target)
    columns = {c["name"]: (c["type"], c.get("dtype", "")) for c in dataset.columns or []}
    return DataOutline("table", columns=columns)
