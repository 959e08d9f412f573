"""Train a spec on a table: split, fit preprocessing on train, build the model, fit, package.

This is the whole of what a worker asks of the engine; it reads top to bottom.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from torch import nn

from engine.artifacts import model_files
from engine.data.preprocess import (
    Preprocessor,
    drop_missing_target,
    fit_preprocessor,
    resolve_features,
)
from engine.data.split import split_rows
from engine.errors import DataError
from engine.models import build_model, count_parameters
from engine.spec import Spec
from engine.training.trainer import CancelCheck, EpochCallback, FitResult, Trainer, resolve_device


@dataclass
class TrainedModel:
    spec: Spec
    preprocessor: Preprocessor
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
        }
        return model_files(self.spec, self.preprocessor, self.model, summary)


def train_on_table(
    spec: Spec,
    table: pa.Table,
    on_epoch: EpochCallback | None = None,
    should_cancel: CancelCheck | None = None,
) -> TrainedModel:
    resolve_features(spec, table.schema)
    table = drop_missing_target(table, spec.target)
    torch.manual_seed(spec.seed)

    labels = None
    if spec.task == "classification":
        labels = pc.dictionary_encode(table.column(spec.target)).combine_chunks().indices
        labels = labels.to_numpy(zero_copy_only=False)
    split = split_rows(table.num_rows, spec.data.split, spec.seed, labels)
    train, validation = table.take(split.train), table.take(split.validation)

    preprocessor = fit_preprocessor(spec, train)
    x_train, y_train = _tensors(preprocessor, train)
    x_val, y_val = _tensors(preprocessor, validation)
    if len(x_val) == 0:
        raise DataError(
            "no validation rows remain; upload more rows or raise data.split.validation"
        )

    model = build_model(spec, preprocessor.input_dim, preprocessor.output_dim)
    trainer = Trainer(spec, model, resolve_device(spec.training.device), preprocessor.target.scale)
    fit = trainer.fit(x_train, y_train, x_val, y_val, on_epoch, should_cancel)
    trainer.model.cpu()
    return TrainedModel(
        spec=spec,
        preprocessor=preprocessor,
        model=trainer.model,
        fit=fit,
        metrics=fit.best_metrics,
        rows={"train": len(x_train), "validation": len(x_val), "test": len(split.test)},
    )


def _tensors(preprocessor: Preprocessor, table: pa.Table) -> tuple[torch.Tensor, torch.Tensor]:
    x = preprocessor.transform(table)
    y = preprocessor.encode_target(table.column(preprocessor.target.name))
    if preprocessor.target.kind == "classes":
        # A class seen only in held-out rows cannot be scored by this model.
        known = y >= 0
        x, y = x[known], y[known]
    return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(y))
