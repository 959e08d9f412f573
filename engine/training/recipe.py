"""Train a spec on a dataset: prepare, fit, evaluate, package.

This is the whole of what a worker asks of the engine; it reads top to bottom:
1. prepare the final split (engine/training/preparation.py): split the rows, fit the pipeline
   on the training rows, build tensors, guard against leakage and resample;
2. with `data.split.folds`, cross-validate: k fold models on the non-test rows, each prepared,
   trained and scored exactly as the final model is, on its fold's held-out rows; their
   metrics are reported, the models are not kept;
3. with `model.pretrain`, pretrain the MLP's hidden layers as a deep belief network
   (engine/training/pretraining.py), its RBM epochs reported as the job's first epochs;
4. train the final model on the non-test rows, with its validation split for early stopping
   as in any job, and score it once on the test split. Given validation and test sets
   (`GivenSplits`) take the place of those splits; with data.split.validation 0 and no
   validation set, every non-test row trains for the given epochs.

Task `generation` (a GAN) has a loop of its own, with two networks and two optimizers
(engine/training/gan.py); it reports through the same callbacks and ends in the same
`TrainedModel`, whose model is the generator.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

from engine.artifacts import model_files
from engine.data.augment import build_augment
from engine.errors import SpecMismatch
from engine.evaluation import evaluate, permutation_importance, summarise_folds
from engine.models import DEFAULT_MAX_PARAMETERS, ModelSummary, build_model, count_parameters
from engine.pipeline import Pipeline
from engine.spec import Spec, check_resources
from engine.training.devices import describe_compute, resolve_device
from engine.training.distributed import DistributedContext
from engine.training.preparation import (
    Dataset,
    GivenSplits,
    PreparedData,
    prepare,
    resolve_spec,
)
from engine.training.preparation import dry_run as supervised_dry_run
from engine.training.pretraining import (
    PretrainReport,
    check_pretraining,
    pretrain_config,
    pretrain_dbn,
    pretraining_epochs,
)
from engine.training.trainer import (
    CancelCheck,
    CheckpointCallback,
    EpochCallback,
    EpochReport,
    FitResult,
    Trainer,
)


@dataclass
class FoldReport:
    fold: int  # 1-based
    folds: int
    metrics: dict[str, float]


FoldCallback = Callable[[FoldReport], None]


@dataclass
class TrainedModel:
    spec: Spec
    pipeline: Pipeline
    model: nn.Module
    fit: FitResult
    metrics: dict[str, float]
    rows: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    leakage_removed: dict[str, int] = field(default_factory=dict)
    sampling: dict[str, Any] | None = None
    # The final model scored once on the test split (engine/evaluation.py).
    evaluation: dict[str, Any] = field(default_factory=dict)
    # {"folds": [...], "mean": {...}, "std": {...}} with data.split.folds, else None.
    cross_validation: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    # Global importance per feature on the test split (engine/evaluation.py), or None.
    permutation_importance: dict[str, Any] | None = None
    # Where the final model trained: device, its name, precision, ranks (Trainer.compute).
    compute: dict[str, Any] | None = None

    def report(self) -> dict[str, Any]:
        """What the data and the test split say about this model: the job's report."""
        return {
            "rows": self.rows,
            "dropped": self.dropped,
            "leakage_removed": self.leakage_removed,
            "sampling": self.sampling,
            "evaluation": self.evaluation,
            "cross_validation": self.cross_validation,
            "permutation_importance": self.permutation_importance,
            "compute": self.compute,
            "notes": self.notes,
        }

    def files(self) -> dict[str, bytes]:
        summary = {
            **self.metrics,
            "best_epoch": self.fit.best_epoch,
            "epochs_run": self.fit.epochs_run,
            "parameters": count_parameters(self.model),
            "warnings": self.fit.warnings,
            **self.report(),
        }
        return model_files(self.spec, self.pipeline, self.model, summary)


def train(
    spec: Spec,
    data: Dataset,
    on_epoch: EpochCallback | None = None,
    should_cancel: CancelCheck | None = None,
    on_checkpoint: CheckpointCallback | None = None,
    resume_from: bytes | None = None,
    on_fold: FoldCallback | None = None,
    checkpoint_interval_seconds: float = 30.0,
    given: GivenSplits | None = None,
    distributed: DistributedContext | None = None,
) -> TrainedModel:
    """The final model, its test evaluation and, with data.split.folds, the cross-validation.

    Only the final model reports epochs (`on_epoch`) and checkpoints (after its last epoch,
    and at most every `checkpoint_interval_seconds` before: see `Trainer.fit`): the fold
    models run first and report once each through `on_fold`; `should_cancel` stops either.

    `given` validation and test sets replace those splits (the training set then gives up no
    rows to them): the final model stops early on the given validation set and is scored on
    the given test set.

    Under a `distributed` context (one rank of a torch.distributed run:
    engine/training/distributed_rank.py) the final model trains data-parallel; every rank
    runs all of this alike, and only the caller decides which rank reports."""
    check_resources(spec)
    if spec.task == "generation":
        return _train_gan(
            spec,
            data,
            given,
            on_epoch=on_epoch,
            should_cancel=should_cancel,
            on_checkpoint=on_checkpoint,
            resume_from=resume_from,
            checkpoint_interval_seconds=checkpoint_interval_seconds,
        )
    prepared = prepare(spec, data, given=given)
    cross_validation = _cross_validate(spec, data, should_cancel, on_fold, given)
    spec, trainer, fit = _fit(
        spec,
        prepared,
        on_epoch=on_epoch,
        should_cancel=should_cancel,
        on_checkpoint=on_checkpoint,
        resume_from=resume_from,
        checkpoint_interval_seconds=checkpoint_interval_seconds,
        distributed=distributed,
    )
    evaluation = _evaluate_on_test(spec, prepared, trainer)
    importance = permutation_importance(
        trainer.model,
        prepared.pipeline,
        spec.task,
        prepared.x_test,
        prepared.y_test,
        trainer.device,
        seed=spec.seed,
    )
    trainer.model.cpu()
    return TrainedModel(
        spec,
        prepared.pipeline,
        trainer.model,
        fit,
        fit.metrics or fit.best_metrics,
        prepared.rows,
        dropped=prepared.dropped,
        leakage_removed=prepared.leakage_removed,
        sampling=prepared.sampling,
        evaluation=evaluation,
        cross_validation=cross_validation,
        notes=prepared.notes,
        permutation_importance=importance,
        compute=trainer.compute(),
    )


def dry_run(
    spec: Spec,
    data: Dataset,
    max_parameters: int = DEFAULT_MAX_PARAMETERS,
    given: GivenSplits | None = None,
) -> tuple[Spec, ModelSummary]:
    """The spec with its default model filled in and the layer table of the model it builds
    on this data (engine/training/preparation.py's `dry_run`; for a GAN, the generator's rows
    and the discriminator's)."""
    check_resources(spec)
    if spec.task != "generation":
        return supervised_dry_run(spec, data, max_parameters, given)
    from engine.training.gan import describe_gan

    if given:
        raise SpecMismatch(
            "task", "a GAN trains on every row and is not scored: give no validation or test set"
        )
    return spec, describe_gan(spec, data, max_parameters)


def _train_gan(
    spec: Spec, data: Dataset, given: GivenSplits | None, **callbacks: Any
) -> TrainedModel:
    from engine.training.gan import train_gan

    if given:
        raise SpecMismatch(
            "task", "a GAN trains on every row and is not scored: give no validation or test set"
        )
    spec, prepared, generator, fit = train_gan(spec, data, **callbacks)
    return TrainedModel(
        spec,
        prepared.pipeline,
        generator,
        fit,
        fit.metrics,
        prepared.rows,
        dropped=prepared.dropped,
        leakage_removed={"validation": 0, "test": 0},
        # Nothing is predicted, so nothing is scored on held-out rows.
        evaluation={
            "rows": 0,
            "metrics": {},
            "notes": ["a GAN is not scored on a test split: every row trains it"],
        },
        notes=prepared.notes,
        # Both networks train in full precision, on one rank.
        compute=describe_compute(resolve_device(spec.training.device), None),
    )


def _fit(
    spec: Spec,
    prepared: PreparedData,
    on_epoch: EpochCallback | None = None,
    should_cancel: CancelCheck | None = None,
    resume_from: bytes | None = None,
    distributed: DistributedContext | None = None,
    **callbacks: Any,
) -> tuple[Spec, Trainer, FitResult]:
    """Build the model the spec describes on the prepared data, pretrain it if the spec says
    so, and train it: (the spec with its model filled in, the trainer holding the trained
    model, the fit).

    With pretraining, the RBM epochs are epochs 1..P of what `on_epoch` hears and of the fit,
    and the fine-tuning epochs follow as P+1..P+E. A run resumed from a checkpoint (always
    one of fine-tuning) has its pretrained weights in it and does not pretrain again."""
    torch.manual_seed(spec.seed)
    spec = resolve_spec(spec, prepared.pipeline)
    check_pretraining(spec, prepared.pipeline.embedded_inputs)
    model = build_model(
        spec,
        prepared.pipeline.input_shape,
        prepared.pipeline.output_dim,
        embedded=prepared.pipeline.embedded_inputs,
    )
    device = resolve_device(spec.training.device)
    trainer = Trainer(
        spec,
        model,
        distributed.device(device) if distributed else device,
        prepared.target_scale,
        classes=prepared.pipeline.classes() or None,
        augment=build_augment(spec.data, prepared.kind, spec.task, spec.seed),
        distributed=distributed,
    )
    offset = pretraining_epochs(spec)
    total = offset + spec.training.epochs
    config = pretrain_config(spec)
    if config is not None and resume_from is None:
        n = prepared.x_train.shape[0]
        batch = spec.training.batch_size
        pretrain_dbn(
            trainer.model,
            config,
            prepared.x_train,
            n if batch == "full" else batch,
            spec.seed,
            on_epoch=_pretrain_reporter(on_epoch, total),
            should_cancel=should_cancel,
        )
    fit = trainer.fit(
        prepared.x_train,
        prepared.y_train,
        prepared.x_val,
        prepared.y_val,
        on_epoch=_shifted(on_epoch, offset),
        should_cancel=should_cancel,
        resume_from=resume_from,
        **callbacks,
    )
    return spec, trainer, _fit_after_pretraining(fit, offset)


def _pretrain_reporter(
    on_epoch: EpochCallback | None, total: int
) -> Callable[[PretrainReport], None] | None:
    """An RBM epoch as an epoch of the job: its layer and reconstruction error."""
    if on_epoch is None:
        return None

    def report(pretrained: PretrainReport) -> None:
        on_epoch(
            EpochReport(
                epoch=pretrained.step,
                epochs=total,
                metrics={
                    "pretrain_layer": float(pretrained.layer),
                    "pretrain_reconstruction_error": pretrained.reconstruction_error,
                },
                samples_per_second=pretrained.samples_per_second,
                seconds=pretrained.seconds,
                learning_rate=pretrained.learning_rate,
            )
        )

    return report


def _shifted(on_epoch: EpochCallback | None, offset: int) -> EpochCallback | None:
    """Fine-tuning epochs numbered after the pretraining's (warnings' epochs too)."""
    if on_epoch is None or offset == 0:
        return on_epoch

    def report(epoch: EpochReport) -> None:
        warnings = [
            {**w, "epoch": w["epoch"] + offset} if "epoch" in w else w for w in epoch.warnings
        ]
        on_epoch(
            replace(
                epoch,
                epoch=epoch.epoch + offset,
                epochs=epoch.epochs + offset,
                warnings=warnings,
            )
        )

    return report


def _fit_after_pretraining(fit: FitResult, offset: int) -> FitResult:
    """The fit with its epochs numbered as the job's, after `offset` pretraining epochs."""
    if offset == 0:
        return fit
    return replace(
        fit,
        epochs_run=fit.epochs_run + offset,
        best_epoch=fit.best_epoch + offset,
        history=[{**entry, "epoch": entry["epoch"] + offset} for entry in fit.history],
        warnings=[{**w, "epoch": w["epoch"] + offset} if "epoch" in w else w for w in fit.warnings],
    )


def _evaluate_on_test(spec: Spec, prepared: PreparedData, trainer: Trainer) -> dict[str, Any]:
    return evaluate(
        trainer.model,
        prepared.pipeline,
        spec.task,
        prepared.x_test,
        prepared.y_test,
        trainer.device,
    )


def _cross_validate(
    spec: Spec,
    data: Dataset,
    should_cancel: CancelCheck | None,
    on_fold: FoldCallback | None,
    given: GivenSplits | None = None,
) -> dict[str, Any] | None:
    k = spec.data.split.folds
    if k is None:
        return None
    repeats = spec.data.split.repeats
    folds = k * repeats
    reports = []
    for fold in range(folds):
        repeat = fold // k
        prepared = prepare(spec, data, fold=fold, given=given)
        # Each repeat's fold models start from a seed of their own: the mean is over
        # initialisations as well as partitions (the split itself stays the spec's seed's).
        reseeded = spec.model_copy(update={"seed": spec.seed + repeat})
        _, trainer, fit = _fit(reseeded, prepared, should_cancel=should_cancel)
        scored = _evaluate_on_test(spec, prepared, trainer)
        reports.append(
            {
                "fold": fold + 1,
                "repeat": repeat + 1,
                # "test" is the fold's held-out rows, the ones its metrics come from.
                "rows": prepared.rows,
                "epochs_run": fit.epochs_run,
                "best_epoch": fit.best_epoch,
                "metrics": scored["metrics"],
                "notes": scored["notes"],
            }
        )
        if on_fold is not None:
            on_fold(FoldReport(fold + 1, folds, dict(scored["metrics"])))
    return {**summarise_folds(reports), "repeats": repeats}
