"""Spec checks that need the data: columns exist, the task fits, and the layers' shapes chain.

The same check runs for `POST /v1/specs/validate` and before a job is queued, so no broken
spec reaches a worker.
"""

from __future__ import annotations

from typing import NoReturn

from sqlalchemy.orm import Session

from engine.errors import DataError, SpecMismatch
from engine.models import ModelSummary
from engine.spec import Spec
from engine.spec.model import (
    AutoencoderConfig,
    CNNConfig,
    LayersConfig,
    MLPConfig,
    ModelConfig,
    ResidualLayer,
    RNNConfig,
)
from engine.training.preparation import GivenSplits, given_mismatch
from engine.training.recipe import dry_run
from service.auth.tables import Project
from service.core.errors import InvalidInput, NotFound, invalid_field
from service.core.settings import Settings
from service.core.store import Store
from service.datasets.service import get_dataset, read_dataset
from service.datasets.tables import Dataset
from service.specs.schemas import LayerOut, PretrainingOut, SpecCheckOut

# The request fields that name a given split's dataset, by split.
GIVEN_FIELDS = {"validation": "validation_dataset_id", "test": "test_dataset_id"}


def check_spec(
    session: Session,
    store: Store,
    settings: Settings,
    project: Project,
    dataset_id: str,
    spec: Spec,
    validation_dataset_id: str | None = None,
    test_dataset_id: str | None = None,
) -> tuple[Dataset, Spec, ModelSummary]:
    """The dataset, the spec with its default model filled in, and the model's layer table.

    A given validation or test dataset must be this project's and hold what the spec reads
    of the training dataset (its columns and their types, or arrays of its shape): a 422
    naming the field otherwise."""
    dataset = get_dataset(session, project, dataset_id)
    check_spec_limits(spec, settings, dataset.rows)
    ids = {"validation": validation_dataset_id, "test": test_dataset_id}
    given_rows = {
        split: given_dataset(session, project, GIVEN_FIELDS[split], given_id)
        for split, given_id in ids.items()
        if given_id is not None
    }
    field = "dataset_id"
    try:
        data = read_dataset(store, dataset)
        given_data = {split: read_dataset(store, row) for split, row in given_rows.items()}
        given = GivenSplits(**given_data)
        resolved, summary = dry_run(spec, data, max_parameters=settings.max_parameters, given=given)
        for split, other in given_data.items():
            field = GIVEN_FIELDS[split]
            reason = given_mismatch(spec, data, other)
            if reason is not None:
                raise invalid_field(
                    field,
                    f"dataset {given_rows[split].id!r} does not match the training dataset: "
                    f"{reason}",
                    code="dataset_mismatch",
                )
        return dataset, resolved, summary
    except SpecMismatch as exc:
        raise invalid_field(f"spec.{exc.field}", exc.reason, code="invalid_spec") from exc
    except DataError as exc:
        raise invalid_field(field, exc.message, code="bad_dataset") from exc


def given_dataset(session: Session, project: Project, field: str, dataset_id: str) -> Dataset:
    """A dataset named in a request field other than the path: this project's, or a 422
    naming the field (another project's dataset is not found, as everywhere)."""
    try:
        return get_dataset(session, project, dataset_id)
    except NotFound as exc:
        raise invalid_field(
            field, f"no dataset {dataset_id!r} in this project", code="dataset_not_found"
        ) from exc


def check_spec_limits(spec: Spec, settings: Settings, rows: int | None = None) -> None:
    """The configured limits a spec can break without the data: epochs, batch size (`full` is
    a batch of all `rows`), layers. The parameter limit needs the input shape: `dry_run`."""
    if spec.training.epochs > settings.max_epochs:
        _over_limit("spec.training.epochs", spec.training.epochs, settings.max_epochs)
    pretrain = getattr(spec.model, "pretrain", None)
    if pretrain is not None and pretrain.epochs > settings.max_epochs:
        _over_limit("spec.model.pretrain.epochs", pretrain.epochs, settings.max_epochs)
    batch = spec.training.batch_size
    if batch == "full":
        if rows is not None and rows > settings.max_batch_size:
            _over_limit(
                "spec.training.batch_size",
                rows,
                settings.max_batch_size,
                f"'full' is a batch of all {rows} rows, over the limit of "
                f"{settings.max_batch_size}; give a number",
            )
    elif batch > settings.max_batch_size:
        _over_limit("spec.training.batch_size", batch, settings.max_batch_size)
    if spec.model is not None:
        field, layers = count_layers(spec.model)
        if layers > settings.max_layers:
            _over_limit(
                field,
                layers,
                settings.max_layers,
                f"{layers} layers is over the limit of {settings.max_layers}",
            )


def count_layers(model: ModelConfig) -> tuple[str, int]:
    """The field that sets the model's depth, and the layers it asks for: listed layers (those
    inside residual blocks too), hidden widths, filter blocks, stacked recurrent layers."""
    if isinstance(model, LayersConfig):
        return "spec.model.layers", _listed_layers(model.layers)
    if isinstance(model, MLPConfig):
        return "spec.model.hidden", len(model.hidden)
    if isinstance(model, CNNConfig):
        return "spec.model.filters", len(model.filters or []) + len(model.head)
    if isinstance(model, RNNConfig):
        return "spec.model.layers", model.layers + len(model.head)
    if isinstance(model, AutoencoderConfig):
        # The decoder mirrors the encoder.
        return "spec.model.hidden", 2 * len(model.hidden or [])
    return "spec.model", 0


def _listed_layers(layers: list) -> int:
    total = 0
    for layer in layers:
        if isinstance(layer, ResidualLayer):
            total += 1 + _listed_layers(layer.layers)
        else:
            # A recurrent layer stacks `layers` of its kind; the others have no such field.
            total += getattr(layer, "layers", 1)
    return total


def _over_limit(field: str, value: int, limit: int, reason: str | None = None) -> NoReturn:
    reason = reason or f"{value} is over the limit of {limit}"
    raise InvalidInput(
        f"{field}: {reason}", code="invalid_spec", details=[{"field": field, "limit": limit}]
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
        pretraining=(
            PretrainingOut.model_validate(summary.pretraining) if summary.pretraining else None
        ),
    )
