"""Spec checks that need the data: columns exist, the task fits, and the layers' shapes chain.

The same check runs for `POST /v1/specs/validate` and before a job is queued, so no broken
spec reaches a worker.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from engine.errors import DataError, SpecMismatch
from engine.models import ModelSummary
from engine.spec import Spec
from engine.training.recipe import dry_run
from service.auth.tables import Project
from service.core.errors import InvalidInput, invalid_field
from service.core.settings import Settings
from service.core.store import Store
from service.datasets.service import get_dataset, read_dataset
from service.datasets.tables import Dataset
from service.specs.schemas import LayerOut, SpecCheckOut


def check_spec(
    session: Session,
    store: Store,
    settings: Settings,
    project: Project,
    dataset_id: str,
    spec: Spec,
) -> tuple[Dataset, Spec, ModelSummary]:
    """The dataset, the spec with its default model filled in, and the model's layer table."""
    dataset = get_dataset(session, project, dataset_id)
    check_spec_limits(spec, settings)
    try:
        return dataset, *dry_run(spec, read_dataset(store, dataset))
    except SpecMismatch as exc:
        raise invalid_field(f"spec.{exc.field}", exc.reason, code="invalid_spec") from exc
    except DataError as exc:
        raise invalid_field("dataset_id", exc.message, code="bad_dataset") from exc


def check_spec_limits(spec: Spec, settings: Settings) -> None:
    if spec.training.epochs > settings.max_epochs:
        raise InvalidInput(
            f"spec.training.epochs: {spec.training.epochs} is over the limit of "
            f"{settings.max_epochs}",
            code="invalid_spec",
            details=[{"field": "spec.training.epochs", "limit": settings.max_epochs}],
        )


def describe(spec: Spec, summary: ModelSummary) -> SpecCheckOut:
    return SpecCheckOut(
        input_shape=list(summary.input_shape),
        output_shape=list(summary.output_shape),
        parameters=summary.parameters,
        layers=[
            LayerOut(
                name=layer.name,
                type=layer.type,
                output_shape=list(layer.output_shape),
                parameters=layer.parameters,
            )
            for layer in summary.layers
        ],
        model=(spec.model.model_dump(mode="json") if spec.model else {}),
    )
