"""Train a spec on a dataset: split, fit the pipeline on train, build the model, fit, package.

This is the whole of what a worker asks of the engine; it reads top to bottom. The same
preparation serves `dry_run`, which builds the model on a sample and reports its layer table
before a job is queued.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from torch import nn

from engine.artifacts import model_files
from engine.data.arrays import ArrayData, fit_array_preprocessor
from engine.data.preprocess import (
    check_spec_against_schema,
    drop_missing_target,
    fit_preprocessor,
    resolve_features,
)
from engine.data.split import split_rows
from engine.data.windows import (
    fit_window_scaler,
    make_windows,
    time_ordered_split,
    window_channels,
)
from engine.errors import DataError, SpecMismatch
from engine.models import (
    ModelSummary,
    build_model,
    count_parameters,
    default_model_config,
    describe_model,
)
from engine.pipeline import ArrayPipeline, Pipeline, TablePipeline, WindowPipeline
from engine.spec import Spec
from engine.training.spec import check_loss_for_task
from engine.training.trainer import (
    CancelCheck,
    CheckpointCallback,
    EpochCallback,
    FitResult,
    Trainer,
    resolve_device,
)

Dataset = pa.Table | ArrayData


@dataclass
class PreparedData:
    pipeline: Pipeline
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    rows: dict[str, int] = field(default_factory=dict)
    # Regression targets are standardised; metrics in target units need the scale.
    target_scale: float = 1.0


@dataclass
class TrainedModel:
    spec: Spec
    pipeline: Pipeline
    model: nn.Module
    fit: FitResult
    metrics: dict[str, float]
    rows: dict[str, int] = field(default_factory=dict)

    def files(self) -> dict[str, bytes]:
        summary = {
            **self.metrics,
            "best_epoch": self.fit.best_epoch,
            "epochs_run": self.fit.epochs_run,
            "parameters": count_parameters(self.model),
            "rows": self.rows,
            "warnings": self.fit.warnings,
        }
        return model_files(self.spec, self.pipeline, self.model, summary)


def train(
    spec: Spec,
    data: Dataset,
    on_epoch: EpochCallback | None = None,
    should_cancel: CancelCheck | None = None,
    on_checkpoint: CheckpointCallback | None = None,
    resume_from: bytes | None = None,
) -> TrainedModel:
    torch.manual_seed(spec.seed)
    prepared = prepare(spec, data)
    spec = resolve_spec(spec, prepared.pipeline)
    model = build_model(spec, prepared.pipeline.input_shape, prepared.pipeline.output_dim)
    trainer = Trainer(
        spec,
        model,
        resolve_device(spec.training.device),
        prepared.target_scale,
        classes=prepared.pipeline.classes() or None,
    )
    fit = trainer.fit(
        prepared.x_train,
        prepared.y_train,
        prepared.x_val,
        prepared.y_val,
        on_epoch=on_epoch,
        should_cancel=should_cancel,
        on_checkpoint=on_checkpoint,
        resume_from=resume_from,
    )
    trainer.model.cpu()
    return TrainedModel(
        spec, prepared.pipeline, trainer.model, fit, fit.metrics or fit.best_metrics, prepared.rows
    )


def dry_run(spec: Spec, data: Dataset) -> tuple[Spec, ModelSummary]:
    """The spec with its default model filled in, and the model it builds on this data,
    shape-checked by a forward pass on zeros.

    The pipeline is fitted on the whole training split (so every class and category counts)
    but no tensors are built: that is the costly part of preparing data."""
    pipeline = prepare(spec, data, fit_only=True).pipeline
    spec = resolve_spec(spec, pipeline)
    return spec, describe_model(spec, pipeline.input_shape, pipeline.output_dim)


def resolve_spec(spec: Spec, pipeline: Pipeline) -> Spec:
    """The spec with its default model filled in, as saved beside the weights."""
    if spec.model is not None:
        return spec
    model = default_model_config(spec.task, pipeline.input_shape)
    return spec.model_copy(update={"model": model})


def prepare(spec: Spec, data: Dataset, fit_only: bool = False) -> PreparedData:
    """Split, fit the pipeline on the training rows, and (unless `fit_only`) build tensors."""
    check_loss_for_task(spec.training, spec.task)
    if isinstance(data, ArrayData):
        return _prepare_arrays(spec, data, fit_only)
    check_spec_against_schema(spec, data.schema)
    if spec.data.image_size is not None:
        raise SpecMismatch("data.image_size", "applies to image datasets; this one is a table")
    if spec.task == "forecasting":
        return _prepare_windows(spec, data, fit_only)
    return _prepare_table(spec, data, fit_only)


def _prepare_table(spec: Spec, table: pa.Table, fit_only: bool) -> PreparedData:
    table = drop_missing_target(table, spec.target)
    labels = None
    if spec.task == "classification":
        labels = pc.dictionary_encode(table.column(spec.target)).combine_chunks().indices
        labels = labels.to_numpy(zero_copy_only=False)
    split = split_rows(table.num_rows, spec.data.split, spec.seed, labels)
    train_rows, validation_rows = table.take(split.train), table.take(split.validation)

    pipeline = TablePipeline(fit_preprocessor(spec, train_rows))
    if fit_only:
        return _fitted(pipeline)
    preprocessor = pipeline.preprocessor
    x_train, x_val = preprocessor.transform(train_rows), preprocessor.transform(validation_rows)
    if spec.task == "reconstruction":
        y_train, y_val = x_train, x_val
    else:
        y_train = preprocessor.encode_target(train_rows.column(spec.target))
        y_val = preprocessor.encode_target(validation_rows.column(spec.target))
    return _tensors(
        pipeline,
        (x_train, y_train),
        (x_val, y_val),
        test_rows=len(split.test),
        target_scale=preprocessor.target.scale,
        drop_unknown_classes=spec.task == "classification",
    )


def _prepare_windows(spec: Spec, table: pa.Table, fit_only: bool) -> PreparedData:
    features = [f for f in resolve_features(spec, table.schema) if f != spec.target]
    x, y = make_windows(table, spec.target, features, spec.data.window, spec.data.horizon)
    split = spec.data.split
    train_idx, val_idx, test_idx = time_ordered_split(
        len(x), split.validation, split.test, spec.data.horizon
    )
    scaler = fit_window_scaler(
        x, train_idx, window_channels(spec.target, features), spec.data.horizon, y
    )
    if fit_only:
        return _fitted(WindowPipeline(scaler))
    x, y = scaler.transform(x), scaler.encode_target(y, x)
    return _tensors(
        WindowPipeline(scaler),
        (x[train_idx], y[train_idx]),
        (x[val_idx], y[val_idx]),
        test_rows=len(test_idx),
        target_scale=scaler.change_scale,
    )


def _prepare_arrays(spec: Spec, data: ArrayData, fit_only: bool) -> PreparedData:
    if spec.task != "reconstruction":
        if data.y is None:
            raise SpecMismatch("target", "this dataset has no `y` array to predict")
        if spec.target != "y":
            raise SpecMismatch("target", f"array datasets predict `y`, not {spec.target!r}")
    if spec.task == "forecasting":
        raise SpecMismatch("task", "forecasting reads a CSV time series, not arrays")
    labels = data.y if spec.task == "classification" else None
    split = split_rows(data.n, spec.data.split, spec.seed, labels)
    preprocessor = fit_array_preprocessor(data, split.train, spec.data.image_size, spec.task)
    pipeline = ArrayPipeline(preprocessor)
    if fit_only:
        return _fitted(pipeline)
    x = preprocessor.transform(data.x)
    y = x if spec.task == "reconstruction" else preprocessor.encode_target(data)
    return _tensors(
        pipeline,
        (x[split.train], y[split.train]),
        (x[split.validation], y[split.validation]),
        test_rows=len(split.test),
        target_scale=preprocessor.target.scale,
        drop_unknown_classes=spec.task == "classification",
    )


def _fitted(pipeline: Pipeline) -> PreparedData:
    """A fitted pipeline with no data: what the dry run needs."""
    empty = torch.zeros((0, *pipeline.input_shape))
    return PreparedData(pipeline, empty, empty, empty, empty)


def _tensors(
    pipeline: Pipeline,
    train: tuple[np.ndarray, np.ndarray],
    validation: tuple[np.ndarray, np.ndarray],
    test_rows: int,
    target_scale: float,
    drop_unknown_classes: bool = False,
) -> PreparedData:
    parts = []
    for x, y in (train, validation):
        if drop_unknown_classes:
            # A class seen only in held-out rows cannot be scored by this model.
            known = y >= 0
            x, y = x[known], y[known]
        parts += [
            torch.from_numpy(np.ascontiguousarray(x)),
            torch.from_numpy(np.ascontiguousarray(y)),
        ]
    if len(parts[2]) == 0:
        raise DataError(
            "no validation rows remain; upload more rows or raise data.split.validation"
        )
    rows = {"train": len(parts[0]), "validation": len(parts[2]), "test": test_rows}
    return PreparedData(pipeline, *parts, rows=rows, target_scale=float(target_scale))
