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

Dataset = pa.Table | ArrayData


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
    spec: Spec, data: Dataset, max_parameters: int = DEFAULT_MAX_PARAMETERS
) -> tuple[Spec, ModelSummary]:
    """The spec with its default model filled in, and the model it builds on this data,
    shape-checked by a forward pass on zeros. A model of more than `max_parameters` weights
    is refused (SpecMismatch on `model`) before any is allocated.

    The pipeline is fitted on the whole training split (so every class and category counts)
    but no tensors are built: that is the costly part of preparing data."""
    pipeline = prepare(spec, data, fit_only=True).pipeline
    folds = spec.data.split.folds
    if folds is not None and spec.data.sampling.method in SYNTHETIC_METHODS:
        # Each fold resamples its own training rows, fewer than the final split's: a class
        # too small for k_neighbors there would fail the job after it was accepted.
        for fold in range(folds):
            prepare(spec, data, fit_only=True, fold=fold)
    spec = resolve_spec(spec, pipeline)
    return spec, describe_model(
        spec,
        pipeline.input_shape,
        pipeline.output_dim,
        embedded=pipeline.embedded_inputs,
        max_parameters=max_parameters,
    )


def resolve_spec(spec: Spec, pipeline: Pipeline) -> Spec:
    """The spec with its default model filled in, as saved beside the weights."""
    if spec.model is not None:
        return spec
    model = default_model_config(spec.task, pipeline.input_shape)
    return spec.model_copy(update={"model": model})


def prepare(
    spec: Spec, data: Dataset, fit_only: bool = False, fold: int | None = None
) -> PreparedData:
    """Split, fit the pipeline on the training rows, and (unless `fit_only`) build tensors.

    `fold` (0-based) prepares that cross-validation fold instead of the final split: its
    training rows split again for validation, its held-out rows as the test rows."""
    check_loss_for_task(spec.training, spec.task)
    check_sampling(spec)
    if isinstance(data, ArrayData):
        return _prepare_arrays(spec, data, fit_only, fold)
    check_spec_against_schema(spec, data.schema)
    if spec.data.image_size is not None:
        raise SpecMismatch("data.image_size", "applies to image datasets; this one is a table")
    if spec.task == "forecasting":
        return _prepare_windows(spec, data, fit_only, fold)
    return _prepare_table(spec, data, fit_only, fold)


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


def _prepare_table(spec: Spec, table: pa.Table, fit_only: bool, fold: int | None) -> PreparedData:
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
    parts = [
        _encode_rows(spec, pipeline, rows)
        for rows in (train_rows, table.take(split.validation), table.take(split.test))
    ]
    return _tensors(
        spec,
        pipeline,
        *parts,
        kind="table",
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


def _prepare_windows(spec: Spec, table: pa.Table, fit_only: bool, fold: int | None) -> PreparedData:
    check_augment(spec.data, "sequence", spec.task)
    _refuse_split_columns(spec, "forecasting is always split in time order, rows in file order")
    features = [f for f in resolve_features(spec, table.schema) if f != spec.target]
    x, y = make_windows(table, spec.target, features, spec.data.window, spec.data.horizon)
    split, horizon = spec.data.split, spec.data.horizon
    train_idx, val_idx, test_idx = time_ordered_split(len(x), split.validation, split.test, horizon)
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
    return _tensors(
        spec,
        WindowPipeline(scaler),
        (x[train_idx], y[train_idx]),
        (x[val_idx], y[val_idx]),
        (x[test_idx], y[test_idx]),
        kind="sequence",
        target_scale=scaler.change_scale,
    )


def _prepare_arrays(spec: Spec, data: ArrayData, fit_only: bool, fold: int | None) -> PreparedData:
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
    pipeline = ArrayPipeline(preprocessor)
    blocks = vector_blocks(data.x.shape[1]) if data.kind == "vector" else None
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
    return _tensors(
        spec,
        pipeline,
        *((x[rows], y[rows]) for rows in (split.train, split.validation, split.test)),
        kind=data.kind,
        target_scale=preprocessor.target.scale,
        leakage=leakage,
        notes=notes,
        blocks=blocks,
    )


def _embeds_codes(spec: Spec, data: ArrayData) -> bool:
    """Whether x holds the integer codes of a layers list's first `embedding` (token ids):
    they must reach it as they are, not standardised. Codes outside the table are refused."""
    model = spec.model
    if not isinstance(model, LayersConfig) or not isinstance(model.layers[0], EmbeddingLayer):
        return False
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
    return True


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
    blocks: list[Block] | None = None,
) -> PreparedData:
    """`blocks`: the encoded input's feature blocks, for smote/smotenc/smoten."""
    classification = spec.task == "classification"
    parts = []
    for x, y in (train, validation, test):
        if classification:
            # A class seen only in held-out rows cannot be scored by this model.
            known = y >= 0
            x, y = x[known], y[known]
        parts.append((x, y))
    if len(parts[1][0]) == 0:
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
