"""Preparing a run: split the rows (engine/data/split.py), fit the pipeline on the training
rows, build tensors, drop held-out rows that repeat a training row (the leakage guard),
resample the training rows (data.sampling), and fill in the spec's default model.

Apart from the recipe (engine/training/recipe.py) because it serves more than the final fit:
each cross-validation fold (`fold`), and `dry_run`, which builds the model on a sample and
reports its layer table before a job is queued.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from engine.data.arrays.dataset import ArrayData
from engine.data.arrays.preprocessor import fit_array_preprocessor
from engine.data.augment import check_augment
from engine.data.ingest.table import logical_type
from engine.data.preprocess.checks import check_spec_against_schema, require_default_preprocess
from engine.data.preprocess.cleaning import clean_training_rows, drop_missing_target
from engine.data.preprocess.columns import resolve_features
from engine.data.preprocess.fit import fit_preprocessor
from engine.data.sampling import (
    Block,
    check_sampling,
    check_synthesis,
    class_counts,
    resample,
    synthesise,
    table_blocks,
    vector_blocks,
)
from engine.data.split import (
    SplitIndices,
    cross_validation_splits,
    row_codes,
    seen_in_training,
    split_rows,
    table_row_codes,
)
from engine.data.windows import fit_window_scaler, make_windows, time_ordered_split, window_channels
from engine.errors import DataError, SpecMismatch
from engine.models import DEFAULT_MAX_PARAMETERS, ModelSummary, default_model_config, describe_model
from engine.pipeline import ArrayPipeline, Pipeline, TablePipeline, WindowPipeline
from engine.spec import Spec
from engine.spec.data import SYNTHETIC_METHODS
from engine.spec.model import EmbeddingLayer, LayersConfig
from engine.spec.training import check_loss_for_task
from engine.training.pretraining import check_pretraining, describe_pretraining
from engine.training.trainer import check_without_validation

Dataset = pa.Table | ArrayData


@dataclass
class GivenSplits:
    """Held-out sets the user uploaded apart (a benchmark's own test file): each replaces the
    split of its name, so no rows of the training set are cut for it. The pipeline is fitted
    on the training set only; these are encoded with it, and kept whole."""

    validation: Dataset | None = None
    test: Dataset | None = None

    def __bool__(self) -> bool:
        return self.validation is not None or self.test is not None


@dataclass
class PreparedData:
    pipeline: Pipeline
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    rows: dict[str, int] = field(default_factory=dict)
    # Training rows removed by cleaning (duplicates, missing, outliers), by rule.
    dropped: dict[str, int] = field(default_factory=dict)
    # Held-out rows equal to a training row, removed from validation and test.
    leakage_removed: dict[str, int] = field(default_factory=dict)
    # {"method", "before": rows per class, "after": rows per class}; None without sampling.
    sampling: dict[str, Any] | None = None
    # What the report should say about the data (a split left empty, rows kept anyway).
    notes: list[str] = field(default_factory=list)
    # Regression targets are standardised; metrics in target units need the scale.
    target_scale: float = 1.0
    # What augmentation can apply to: image, sequence, vector or table.
    kind: str = "table"


def dry_run(
    spec: Spec,
    data: Dataset,
    max_parameters: int = DEFAULT_MAX_PARAMETERS,
    given: GivenSplits | None = None,
) -> tuple[Spec, ModelSummary]:
    """The spec with its default model filled in, and the model it builds on this data,
    shape-checked by a forward pass on zeros. A model of more than `max_parameters` weights
    is refused (SpecMismatch on `model`) before any is allocated.

    The pipeline is fitted on the whole training split (so every class and category counts)
    but no tensors are built: that is the costly part of preparing data."""
    pipeline = prepare(spec, data, fit_only=True, given=given).pipeline
    folds = spec.data.split.folds
    if folds is not None and spec.data.sampling.method in SYNTHETIC_METHODS:
        # Each fold resamples its own training rows, fewer than the final split's: a class
        # too small for k_neighbors there would fail the job after it was accepted.
        for fold in range(folds * spec.data.split.repeats):
            prepare(spec, data, fit_only=True, fold=fold, given=given)
    spec = resolve_spec(spec, pipeline)
    check_pretraining(spec, pipeline.embedded_inputs)
    summary = describe_model(
        spec,
        pipeline.input_shape,
        pipeline.output_dim,
        embedded=pipeline.embedded_inputs,
        max_parameters=max_parameters,
    )
    summary.pretraining = describe_pretraining(spec, pipeline.input_shape)
    return spec, summary


def resolve_spec(spec: Spec, pipeline: Pipeline) -> Spec:
    """The spec with its default model filled in, as saved beside the weights."""
    if spec.model is not None:
        return spec
    model = default_model_config(spec.task, pipeline.input_shape)
    return spec.model_copy(update={"model": model})


def prepare(
    spec: Spec,
    data: Dataset,
    fit_only: bool = False,
    fold: int | None = None,
    given: GivenSplits | None = None,
) -> PreparedData:
    """Split, fit the pipeline on the training rows, and (unless `fit_only`) build tensors.

    `fold` (0-based) prepares that cross-validation fold instead of the final split: its
    training rows split again for validation, its held-out rows as the test rows.

    `given` validation or test sets replace those splits: the training set gives up no rows
    to them (the folds too see every row when the test set is given)."""
    check_loss_for_task(spec.training, spec.task)
    check_sampling(spec)
    given = given or GivenSplits()
    spec = _split_for_given(spec, given)
    if fold is not None:
        # A fold scores its own held-out rows; the given sets are the final model's.
        given = GivenSplits()
    if isinstance(data, ArrayData):
        return _prepare_arrays(spec, data, fit_only, fold, given)
    check_spec_against_schema(spec, data.schema)
    if spec.data.image_size is not None:
        raise SpecMismatch("data.image_size", "applies to image datasets; this one is a table")
    if spec.task == "forecasting":
        return _prepare_windows(spec, data, fit_only, fold, given)
    return _prepare_table(spec, data, fit_only, fold, given)


def _split_for_given(spec: Spec, given: GivenSplits) -> Spec:
    """The spec whose split cuts no rows for a given set, after checking that a run with no
    validation rows needs none."""
    split = spec.data.split
    if given.validation is not None and split.folds is not None:
        raise SpecMismatch(
            "data.split.folds",
            "cross-validation cuts each fold's validation rows from its training rows; it "
            "cannot use a validation dataset: leave out validation_dataset_id or "
            "data.split.folds",
        )
    if given.validation is None and split.validation == 0:
        try:
            check_without_validation(spec, "data.split.validation is 0")
        except SpecMismatch as exc:
            raise SpecMismatch("data.split.validation", exc.reason) from exc
    update = {}
    if given.validation is not None:
        update["validation"] = 0.0
    if given.test is not None:
        update["test"] = 0.0
    if not update:
        return spec
    data = spec.data.model_copy(update={"split": split.model_copy(update=update)})
    return spec.model_copy(update={"data": data})


def _split(
    spec: Spec,
    n_rows: int,
    fold: int | None,
    labels: np.ndarray | None = None,
    groups: np.ndarray | None = None,
    rank: np.ndarray | None = None,
) -> SplitIndices:
    config = spec.data.split
    split = split_rows(n_rows, config, spec.seed, labels, groups, rank)
    if config.folds is None:
        return split
    # Folds are cut even for the final split (and the dry run): too few rows for k folds is
    # refused before any model trains.
    pool = np.sort(np.concatenate([split.train, split.validation]))
    folds = cross_validation_splits(pool, config, spec.seed, labels, groups, rank)
    return split if fold is None else folds[fold]


def _prepare_table(
    spec: Spec, table: pa.Table, fit_only: bool, fold: int | None, given: GivenSplits
) -> PreparedData:
    check_augment(spec.data, "table", spec.task)
    table = drop_missing_target(table, spec.target)
    spec = _without_split_columns(spec, table.schema)
    labels = None
    if spec.task == "classification":
        labels = pc.dictionary_encode(table.column(spec.target)).combine_chunks().indices
        labels = labels.to_numpy(zero_copy_only=False)
    groups, rank = _split_columns(spec, table)
    split = _split(spec, table.num_rows, fold, labels, groups, rank)
    train_rows, dropped = clean_training_rows(spec, table.take(split.train))

    pipeline = TablePipeline(fit_preprocessor(spec, train_rows))
    blocks = table_blocks(pipeline.preprocessor.features)
    if spec.data.sampling.method in SYNTHETIC_METHODS:
        train_labels = pipeline.preprocessor.encode_target(train_rows.column(spec.target))
        check_synthesis(spec, blocks, train_labels)
    if fit_only:
        return _fitted(pipeline)
    # The leakage guard compares raw values of the input columns and the target.
    compared = resolve_features(spec, table.schema)
    if spec.target is not None:
        compared = [*compared, spec.target]
    codes = table_row_codes(
        pa.concat_tables(
            [
                train_rows.select(compared),
                table.select(compared).take(np.concatenate([split.validation, split.test])),
            ],
            promote_options="permissive",
        )
    )
    n_train, n_val = train_rows.num_rows, len(split.validation)
    split, leakage, notes = _guard_leakage(
        split,
        codes[:n_train],
        {"validation": codes[n_train : n_train + n_val], "test": codes[n_train + n_val :]},
    )
    held = {
        name: _encode_rows(spec, pipeline, table.take(rows))
        for name, rows in (("validation", split.validation), ("test", split.test))
    }
    for name, rows in _given_parts(given).items():
        kept = drop_missing_target(rows, spec.target)
        notes += _given_repeats(name, *_given_table_codes(train_rows, kept, compared))
        x, y, more = encode_held_out(spec, pipeline, rows)
        held[name] = (x, y)
        notes += [f"{name} dataset: {note}" for note in more]
    return _tensors(
        spec,
        pipeline,
        _encode_rows(spec, pipeline, train_rows),
        held["validation"],
        held["test"],
        kind="table",
        wants_validation=spec.data.split.validation > 0 or given.validation is not None,
        target_scale=pipeline.preprocessor.target.scale,
        dropped=dropped,
        leakage=leakage,
        notes=notes,
        blocks=blocks,
    )


def _guard_leakage(
    split: SplitIndices, train_codes: np.ndarray, held_codes: dict[str, np.ndarray]
) -> tuple[SplitIndices, dict[str, int], list[str]]:
    """The split without the held-out rows that repeat a training row (`row_codes` equal),
    how many left each part, and notes for the report.

    Validation rows all of which repeat training rows are kept (early stopping needs some);
    the note says their loss is no estimate on unseen rows."""
    kept, removed, notes = {}, {}, []
    for name in ("validation", "test"):
        rows = getattr(split, name)
        seen = seen_in_training(train_codes, held_codes[name])
        if name == "validation" and len(rows) and seen.all():
            notes.append(
                "every validation row repeats a training row; they were kept for early "
                "stopping, so validation metrics are not on unseen rows"
            )
            seen[:] = False
        kept[name], removed[name] = rows[~seen], int(seen.sum())
    if len(split.test) and not len(kept["test"]):
        notes.append("every test row repeats a training row: the model was not evaluated")
    return SplitIndices(split.train, kept["validation"], kept["test"]), removed, notes


def _encode_rows(
    spec: Spec, pipeline: TablePipeline, rows: pa.Table
) -> tuple[np.ndarray, np.ndarray]:
    preprocessor = pipeline.preprocessor
    if rows.num_rows == 0:
        x = np.zeros((0, *pipeline.input_shape), dtype=np.float32)
        return x, (x if spec.task == "reconstruction" else np.zeros(0, dtype=np.int64))
    x = preprocessor.transform(rows)
    if spec.task == "reconstruction":
        return x, x
    return x, preprocessor.encode_target(rows.column(spec.target))


def _without_split_columns(spec: Spec, schema: pa.Schema) -> Spec:
    """A group column is an identifier, and the order_by column's held-out values all lie
    past the training ones: neither is a default feature (naming one in features still works).
    """
    config = spec.data.split
    left_out = {c for c in (config.group, config.order_by) if c is not None}
    if spec.features is not None or not left_out:
        return spec
    features = [n for n in schema.names if n != spec.target and n not in left_out]
    return spec.model_copy(update={"features": features})


def _split_columns(spec: Spec, table: pa.Table) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(a group code per row, each row's place in time) from data.split.group / order_by."""
    config = spec.data.split
    groups = rank = None
    for field_name, column in (("group", config.group), ("order_by", config.order_by)):
        if column is None:
            continue
        if column not in table.column_names:
            raise SpecMismatch(f"data.split.{field_name}", f"{column!r} is not a column")
        if column == spec.target:
            raise SpecMismatch(f"data.split.{field_name}", "cannot be the target column")
    if config.group is not None:
        encoded = pc.dictionary_encode(table.column(config.group).combine_chunks())
        groups = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False)
    if config.order_by is not None:
        # Rows with no time come first: they are never the "latest" rows scored.
        order = pc.sort_indices(
            table, sort_keys=[(config.order_by, "ascending", "at_start")]
        ).to_numpy()
        rank = np.empty(table.num_rows, dtype=np.int64)
        rank[order] = np.arange(table.num_rows)
    return groups, rank


def _prepare_windows(
    spec: Spec, table: pa.Table, fit_only: bool, fold: int | None, given: GivenSplits
) -> PreparedData:
    check_augment(spec.data, "sequence", spec.task)
    _refuse_split_columns(spec, "forecasting is always split in time order, rows in file order")
    features = [f for f in resolve_features(spec, table.schema) if f != spec.target]
    x, y = make_windows(table, spec.target, features, spec.data.window, spec.data.horizon)
    split, horizon = spec.data.split, spec.data.horizon
    train_idx, val_idx, test_idx = time_ordered_split(len(x), split.validation, split.test, horizon)
    if split.repeats > 1:
        raise SpecMismatch(
            "data.split.repeats",
            "forecasting folds follow the time order, which has one partition: no repeats",
        )
    if split.folds is not None:
        pool = np.concatenate([train_idx, val_idx])
        # Windows are in time order; a fold's held-out windows start after a gap long
        # enough that no target step is both trained on and scored.
        folds = cross_validation_splits(
            pool, split, spec.seed, rank=np.arange(len(x)), gap=horizon - 1
        )
        if fold is not None:
            chosen = folds[fold]
            train_idx, val_idx, test_idx = chosen.train, chosen.validation, chosen.test
    scaler = fit_window_scaler(x, train_idx, window_channels(spec.target, features), horizon, y)
    if fit_only:
        return _fitted(WindowPipeline(scaler))
    x, y = scaler.transform(x), scaler.encode_target(y, x)
    # No leakage guard: windows overlap by construction, and equal windows in a series are a
    # repeated pattern, not a leaked row; the time order is what keeps the test period apart.
    held = {"validation": (x[val_idx], y[val_idx]), "test": (x[test_idx], y[test_idx])}
    for name, series in _given_parts(given).items():
        # A given series is cut into windows of its own (none straddles the two files).
        given_x, given_y = make_windows(series, spec.target, features, spec.data.window, horizon)
        held[name] = (scaler.transform(given_x), scaler.encode_target(given_y, given_x))
    return _tensors(
        spec,
        WindowPipeline(scaler),
        (x[train_idx], y[train_idx]),
        held["validation"],
        held["test"],
        kind="sequence",
        target_scale=scaler.change_scale,
        wants_validation=split.validation > 0 or given.validation is not None,
    )


def _prepare_arrays(
    spec: Spec, data: ArrayData, fit_only: bool, fold: int | None, given: GivenSplits
) -> PreparedData:
    check_augment(spec.data, data.kind, spec.task)
    require_default_preprocess(spec, "array datasets")
    _refuse_split_columns(spec, "applies to tables; array datasets have no columns")
    if spec.task != "reconstruction":
        if data.y is None:
            raise SpecMismatch("target", "this dataset has no `y` array to predict")
        if spec.target != "y":
            raise SpecMismatch("target", f"array datasets predict `y`, not {spec.target!r}")
    if spec.task == "forecasting":
        raise SpecMismatch("task", "forecasting reads a CSV time series, not arrays")
    labels = data.y if spec.task == "classification" else None
    split = _split(spec, data.n, fold, labels)
    preprocessor = fit_array_preprocessor(
        data, split.train, spec.data.image_size, spec.task, codes=_embeds_codes(spec, data)
    )
    token_codes = preprocessor.codes is not None
    pipeline = ArrayPipeline(preprocessor)
    blocks = vector_blocks(data.x.shape[1], token_codes) if data.kind == "vector" else None
    if spec.data.sampling.method in SYNTHETIC_METHODS:
        check_synthesis(spec, blocks, preprocessor.encode_target(data)[split.train])
    if fit_only:
        return _fitted(pipeline)
    # The leakage guard compares the stored x (and y) bytes, before any scaling.
    compared = [data.x] if spec.task == "reconstruction" or data.y is None else [data.x, data.y]
    codes = row_codes(compared)
    split, leakage, notes = _guard_leakage(
        split,
        codes[split.train],
        {"validation": codes[split.validation], "test": codes[split.test]},
    )
    x = preprocessor.transform(data.x)
    y = x if spec.task == "reconstruction" else preprocessor.encode_target(data)
    train, validation, test = (
        (x[rows], y[rows]) for rows in (split.train, split.validation, split.test)
    )
    held = {"validation": validation, "test": test}
    for name, other in _given_parts(given).items():
        x_given, y_given, more = encode_held_out(spec, pipeline, other)
        held[name] = (x_given, y_given)
        notes += [f"{name} dataset: {note}" for note in more]
        notes += _given_repeats(name, *_given_array_codes(spec, data, split.train, other))
    return _tensors(
        spec,
        pipeline,
        train,
        held["validation"],
        held["test"],
        kind=data.kind,
        target_scale=preprocessor.target.scale,
        leakage=leakage,
        notes=notes,
        blocks=blocks,
        wants_validation=spec.data.split.validation > 0 or given.validation is not None,
    )


def encode_held_out(
    spec: Spec, pipeline: Pipeline, data: Dataset
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Rows the model never saw (a given test set, a stored dataset to score), encoded with
    the fitted pipeline as the training rows were: (x, y, notes). Rows with no target and,
    for classification, rows of a class the model does not know are left out (each noted)."""
    notes: list[str] = []
    if isinstance(pipeline, WindowPipeline):
        if not isinstance(data, pa.Table):
            raise DataError("a forecasting model reads a time series table, not arrays")
        scaler = pipeline.scaler
        target, *features = scaler.channels
        raw_x, raw_y = make_windows(data, target, features, scaler.window, scaler.horizon)
        return scaler.transform(raw_x), scaler.encode_target(raw_y, raw_x), notes
    if isinstance(pipeline, ArrayPipeline):
        if not isinstance(data, ArrayData):
            raise DataError("this model reads arrays; the dataset is a table")
        x = pipeline.preprocessor.transform(data.x)
        y = x if spec.task == "reconstruction" else pipeline.preprocessor.encode_target(data)
    else:
        if not isinstance(data, pa.Table):
            raise DataError("this model reads table rows; the dataset holds arrays")
        kept = drop_missing_target(data, spec.target)
        if kept.num_rows < data.num_rows:
            notes.append(f"{data.num_rows - kept.num_rows} rows with no target were left out")
        x, y = _encode_rows(spec, pipeline, kept)
    if spec.task == "classification":
        known = y >= 0
        if not known.all():
            notes.append(f"{int((~known).sum())} rows of a class the model never saw were left out")
            x, y = x[known], y[known]
    return x, y, notes


def given_mismatch(spec: Spec, data: Dataset, other: Dataset) -> str | None:
    """Why `other` cannot stand beside the training set `data` as its validation or test set
    (None when it can): another kind of data, a column the spec reads missing or of another
    type, or arrays of another shape."""
    if isinstance(data, ArrayData) != isinstance(other, ArrayData):
        kinds = ["arrays" if isinstance(d, ArrayData) else "a table" for d in (data, other)]
        return f"the training dataset holds {kinds[0]}; this one holds {kinds[1]}"
    if isinstance(data, ArrayData):
        assert isinstance(other, ArrayData)
        if other.kind != data.kind:
            return f"it holds {other.kind}s; the training dataset holds {data.kind}s"
        if other.x.shape[1:] != data.x.shape[1:]:
            return (
                f"x has shape {list(other.x.shape[1:])} per row; the training dataset's has "
                f"{list(data.x.shape[1:])}"
            )
        if spec.task != "reconstruction" and other.y is None:
            return "it has no `y` array to score against"
        if (
            spec.task == "regression"
            and data.y is not None
            and other.y is not None
            and other.y.shape[1:] != data.y.shape[1:]
        ):
            return (
                f"y has shape {list(other.y.shape[1:])} per row; the training dataset's "
                f"has {list(data.y.shape[1:])}"
            )
        return None
    assert isinstance(other, pa.Table)
    spec = _without_split_columns(spec, data.schema)
    read = resolve_features(spec, data.schema)
    if spec.target is not None:
        read = [*read, spec.target]
    missing = [name for name in read if name not in other.column_names]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        return f"it lacks column {missing[0]!r}{more} that the spec reads"
    for name in read:
        trained, given = data.schema.field(name).type, other.schema.field(name).type
        if pa.types.is_null(given) or pa.types.is_null(trained):
            continue  # a column with no values at all fits any type
        if logical_type(trained) != logical_type(given):
            return (
                f"column {name!r} is {logical_type(given)} here and "
                f"{logical_type(trained)} in the training dataset"
            )
    return None


def _given_parts(given: GivenSplits) -> dict[str, Dataset]:
    parts = {"validation": given.validation, "test": given.test}
    return {name: data for name, data in parts.items() if data is not None}


def _given_table_codes(
    train: pa.Table, given: pa.Table, compared: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Row codes of the training rows and a given set's rows, comparable with each other."""
    train = train.select(compared)
    try:
        given = given.select(compared).cast(train.schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        # Values of another type than the training column's cannot repeat a training row.
        return np.zeros(train.num_rows, dtype=np.int64), np.full(given.num_rows, -1)
    codes = table_row_codes(pa.concat_tables([train, given]))
    return codes[: train.num_rows], codes[train.num_rows :]


def _given_array_codes(
    spec: Spec, data: ArrayData, train: np.ndarray, given: ArrayData
) -> tuple[np.ndarray, np.ndarray]:
    """As `_given_table_codes`, on the stored x (and the labels, as values, not indices)."""
    x = np.concatenate([data.x[train], given.x.astype(data.x.dtype, copy=False)])
    parts = [x]
    if spec.task != "reconstruction" and data.y is not None and given.y is not None:
        labels = [_label_values(data)[train], _label_values(given)]
        parts.append(np.concatenate([np.asarray(v).astype(str) for v in labels]))
    codes = row_codes(parts)
    return codes[: len(train)], codes[len(train) :]


def _label_values(data: ArrayData) -> np.ndarray:
    if data.classes is None or data.y is None:
        return np.asarray(data.y)
    return np.asarray(data.classes, dtype=object)[data.y]


def _given_repeats(name: str, train_codes: np.ndarray, given_codes: np.ndarray) -> list[str]:
    """A note when rows of a given set repeat training rows: they are kept (the set is the
    user's own hold-out), but its metrics are then not all on unseen rows."""
    repeats = int(seen_in_training(train_codes, given_codes).sum())
    if not repeats:
        return []
    return [
        f"{repeats} of the {len(given_codes)} rows of the {name} dataset repeat a training row; "
        "they were kept, as the dataset was given"
    ]


def _embeds_codes(spec: Spec, data: ArrayData) -> int | None:
    """How many codes a layers list's first `embedding` takes, when there is one: x then holds
    its integer codes (token ids), which must reach it as they are, not standardised. Codes
    outside the table are refused."""
    model = spec.model
    if not isinstance(model, LayersConfig) or not isinstance(model.layers[0], EmbeddingLayer):
        return None
    layer = model.layers[0]
    if data.kind != "vector":
        raise SpecMismatch(
            "model.layers[0].type", f"embedding takes a vector of codes [T]; x holds {data.kind}s"
        )
    x = data.x
    if x.size and (
        not np.array_equal(x, np.round(x)) or x.min() < 0 or x.max() >= layer.num_embeddings
    ):
        raise SpecMismatch(
            "model.layers[0].num_embeddings",
            f"x must hold integer codes 0..{layer.num_embeddings - 1}; it holds values from "
            f"{float(x.min()):g} to {float(x.max()):g}",
        )
    return layer.num_embeddings


def _refuse_split_columns(spec: Spec, reason: str) -> None:
    config = spec.data.split
    for field_name in ("group", "order_by"):
        if getattr(config, field_name) is not None:
            raise SpecMismatch(f"data.split.{field_name}", reason)


def _fitted(pipeline: Pipeline) -> PreparedData:
    """A fitted pipeline with no data: what the dry run needs."""
    empty = torch.zeros((0, *pipeline.input_shape))
    return PreparedData(pipeline, empty, empty, empty, empty, empty, empty)


def _tensors(
    spec: Spec,
    pipeline: Pipeline,
    train: tuple[np.ndarray, np.ndarray],
    validation: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    kind: str,
    target_scale: float,
    dropped: dict[str, int] | None = None,
    leakage: dict[str, int] | None = None,
    notes: list[str] | None = None,
    wants_validation: bool = True,
    blocks: list[Block] | None = None,
) -> PreparedData:
    """`wants_validation` False (data.split.validation 0, no validation set given) trains with
    no validation rows; otherwise an empty validation split is an error. `blocks`: the encoded
    input's feature blocks, for smote/smotenc/smoten."""
    classification = spec.task == "classification"
    parts = []
    for x, y in (train, validation, test):
        if classification:
            # A class seen only in held-out rows cannot be scored by this model.
            known = y >= 0
            x, y = x[known], y[known]
        parts.append((x, y))
    if wants_validation and len(parts[1][0]) == 0:
        raise DataError(
            "no validation rows remain; upload more rows or raise data.split.validation"
        )
    sampling = None
    method = spec.data.sampling.method
    if classification and method != "none":
        x, y = parts[0]
        classes = pipeline.classes()
        if method in SYNTHETIC_METHODS:
            if blocks is None:  # pragma: no cover - check_synthesis refused it already
                raise SpecMismatch("data.sampling.method", f"{method} needs feature vectors")
            k = spec.data.sampling.k_neighbors
            parts[0] = synthesise(x, y, method, k, spec.seed, blocks)
        else:
            picked = resample(y, method, spec.seed)
            if picked is not None:
                parts[0] = (x[picked], y[picked])
        after = parts[0][1]
        sampling = {
            "method": method,
            "before": class_counts(y, classes),
            "after": class_counts(after, classes),
        }
        if method in SYNTHETIC_METHODS:
            sampling["synthetic"] = len(after) - len(y)
    tensors = [torch.from_numpy(np.ascontiguousarray(array)) for pair in parts for array in pair]
    rows = {
        name: len(pair[0])
        for name, pair in zip(("train", "validation", "test"), parts, strict=True)
    }
    return PreparedData(
        pipeline,
        *tensors,
        rows=rows,
        dropped=dict(dropped or {}),
        leakage_removed=dict(leakage or {"validation": 0, "test": 0}),
        sampling=sampling,
        notes=list(notes or []),
        target_scale=float(target_scale),
        kind=kind,
    )
