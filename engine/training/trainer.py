"""The training loop: one class, one life (`fit`), as fast as a careful hand-written loop.

Every model family goes through the same loop. Data that fits stays as tensors on the device
and is sliced by a shuffled index; no DataLoader, no per-sample Python. The loss sum and the
gradient-norm sample accumulate on the device, and the epoch's metrics are read with one
`.tolist()`: the host never waits for the device inside an epoch. The only per-step Python
besides the step itself is the cancel check (it reads a flag) and the learning rate's
arithmetic. On CUDA: bf16 autocast, and the data copied once from pinned host memory.

Reproducibility: `fit` seeds the shuffling generator (batch order) and torch's global
generator (dropout and any other random layer) from `spec.seed`; the initial weights are the
caller's to seed before building the model. Same spec, seed and data give the same metrics
and weights on CPU. A checkpoint carries every one of these streams, so a resumed run goes on
exactly as an uninterrupted one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from engine.data.augment import BatchAugment
from engine.errors import DataError, SpecMismatch, TrainingCancelled, TrainingDiverged
from engine.spec import Spec
from engine.spec.training import check_loss_for_task
from engine.training.checkpoint import (
    Checkpoint,
    CheckpointError,
    RunState,
    capture_checkpoint,
    capture_rng_states,
    checkpoint_from_bytes,
    detached_copy,
    restore_rng_states,
)
from engine.training.devices import autocast, autocast_dtype, describe_compute, to_device
from engine.training.distributed import DistributedContext
from engine.training.health import (
    EXPLODING_NORM,
    DeadReluProbe,
    GradientProbe,
    HealthMonitor,
)
from engine.training.losses import build_loss, class_weight_vector
from engine.training.optimizers import build_optimizer
from engine.training.schedules import LearningRateSchedule
from engine.training.validation import validation_metrics, validation_sums


@dataclass
class EpochReport:
    epoch: int
    epochs: int
    metrics: dict[str, float]
    samples_per_second: float
    seconds: float
    learning_rate: float = 0.0  # the rate of the epoch's last step
    # {"grad_norm": {layer: float}, "grad_norm_peak": float, "dead_relu_fraction": float | None}
    health: dict[str, Any] = field(default_factory=dict)
    warnings: list[dict[str, Any]] = field(default_factory=list)  # new in this epoch


@dataclass
class FitResult:
    epochs_run: int
    best_epoch: int
    best_metrics: dict[str, float]
    stopped_early: bool
    # One entry per epoch: {"epoch", the metrics, "learning_rate"}.
    history: list[dict[str, float]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)
    # The metrics of the weights the model holds after fit: the best epoch's when early
    # stopping restored them, else the last epoch's.
    metrics: dict[str, float] = field(default_factory=dict)


EpochCallback = Callable[[EpochReport], None]
CancelCheck = Callable[[], bool]
CheckpointCallback = Callable[[Checkpoint], None]


def check_without_validation(spec: Spec, why: str) -> None:
    """Training with no validation rows is allowed only when nothing needs them: refuse early
    stopping and a reduce_on_plateau schedule (SpecMismatch naming the field), saying `why`
    there are none."""
    if spec.training.early_stopping is not None:
        raise SpecMismatch(
            "training.early_stopping",
            f"{why}, and early stopping needs validation rows: set training.early_stopping to "
            "null (train for the given epochs), or keep a validation split",
        )
    schedule = spec.training.schedule
    if schedule is not None and schedule.type == "reduce_on_plateau":
        raise SpecMismatch(
            "training.schedule",
            f"{why}, and reduce_on_plateau watches the validation loss: choose another "
            "schedule, or keep a validation split",
        )


class Trainer:
    def __init__(
        self,
        spec: Spec,
        model: nn.Module,
        device: torch.device,
        target_scale: float = 1.0,
        classes: Sequence[Any] | None = None,
        augment: BatchAugment | None = None,
        distributed: DistributedContext | None = None,
    ) -> None:
        check_loss_for_task(spec.training, spec.task)
        self.spec = spec
        self.config = spec.training
        self.task = spec.task
        self.device = device
        self.model = model.to(device)
        # One of several data-parallel ranks (engine/training/distributed.py), or None: the
        # one-process loop, untouched. Training steps run through `stepped` (the
        # DistributedDataParallel wrapper under a context); everything else, validation and
        # checkpoints included, reads the plain module.
        self.distributed = distributed
        self.stepped = self.model if distributed is None else distributed.wrap(self.model, device)
        # Targets are standardised; MAE and RMSE are reported in the target's own units.
        self.target_scale = target_scale
        # Class labels in index order: the keys of training.class_weights.
        self.classes = classes
        # Applied to training batches only; None keeps the loop exactly the hand-written one.
        self.augment = augment
        self.optimizer = build_optimizer(self.config, self.model.parameters())
        self.autocast_dtype = autocast_dtype(self.config.precision, device)
        # Replaced in fit once the training targets give the class weights.
        self.loss = build_loss(self.config, self.task)
        self.dead_relus = DeadReluProbe(self.model)
        self._l1_params = [p for p in self.model.parameters() if p.ndim > 1]
        self._lr: float | None = None

    def compute(self) -> dict[str, Any]:
        """The device, precision and ranks this trainer trains with, for the job's report."""
        ranks = 1 if self.distributed is None else self.distributed.world_size
        return describe_compute(self.device, self.autocast_dtype, ranks)

    def fit(
        self,
        x_train: torch.Tensor,
        y_train: torch.Tensor,
        x_val: torch.Tensor,
        y_val: torch.Tensor,
        on_epoch: EpochCallback | None = None,
        should_cancel: CancelCheck | None = None,
        on_checkpoint: CheckpointCallback | None = None,
        resume_from: bytes | None = None,
        checkpoint_interval_seconds: float = 30.0,
    ) -> FitResult:
        """Train for `spec.training.epochs` (fewer when early stopping stops), reporting each
        epoch to `on_epoch`. `on_checkpoint` gets a checkpoint after the last epoch and, before
        that, after any epoch that ends `checkpoint_interval_seconds` or more after the last
        checkpoint (0: after every epoch): building one copies the model, the optimizer and the
        history, too costly for every one of many short epochs."""
        x_train, y_train = self._to_device(x_train), self._to_device(y_train)
        x_val, y_val = self._to_device(x_val), self._to_device(y_val)
        n = x_train.shape[0]
        if n == 0:
            raise DataError("training needs at least one training row")
        validating = x_val.shape[0] > 0
        if not validating:
            check_without_validation(self.spec, "no validation rows remain")
        batch = n if self.config.batch_size == "full" else min(self.config.batch_size, n)
        rows = n
        if self.distributed is not None:
            # The batch is global: each rank steps on its share of the rows and of the batch.
            rows, batch = self.distributed.rows(n), self.distributed.batch(batch)
        steps = math.ceil(rows / batch)
        self._prepare(x_train, y_train)

        shuffle = torch.Generator().manual_seed(self.spec.seed)
        torch.manual_seed(self.spec.seed)
        schedule = LearningRateSchedule(self.config, steps)
        monitor = HealthMonitor()
        gradients = GradientProbe(self.model)
        run = RunState()
        if resume_from is not None:
            run = self._resume(checkpoint_from_bytes(resume_from), shuffle, schedule, monitor)
        self._lr = None
        checkpointed_at = time.monotonic()

        for epoch in range(run.epoch + 1, self.config.epochs + 1):
            if run.stopped_early:
                break
            started = time.perf_counter()
            train_loss, gradient_summary = self._train_epoch(
                epoch, x_train, y_train, batch, steps, shuffle, schedule, gradients, should_cancel
            )
            if validating:
                val_sums, dead = self._evaluate_sums(x_val, y_val, watch_relus=True)
            else:
                # No validation rows (data.split.validation 0): the epoch has a train loss only.
                val_sums, dead = torch.zeros(0, device=self.device), None
            metrics, health = self._read_epoch(
                train_loss, gradient_summary, val_sums, dead, gradients, y_val
            )
            self._check_finite(metrics, health["grad_norm_peak"], epoch)
            val_loss = metrics.get("val_loss")
            warnings = monitor.observe(
                epoch,
                health["grad_norm"],
                health["grad_norm_peak"],
                health["dead_relu_fraction"],
                metrics["train_loss"],
                val_loss,
            )
            if val_loss is not None:
                schedule.end_epoch(epoch, val_loss)
            self._track_best(run, epoch, metrics)
            run.history.append({"epoch": epoch, **metrics, "learning_rate": self._lr})

            seconds = time.perf_counter() - started
            # Report before checkpointing: a worker lost in between redoes the epoch and
            # reports it twice (a write the service makes idempotent), never leaves a gap.
            if on_epoch is not None:
                on_epoch(
                    EpochReport(
                        epoch=epoch,
                        epochs=self.config.epochs,
                        metrics=metrics,
                        samples_per_second=n / seconds,
                        seconds=seconds,
                        learning_rate=self._lr or 0.0,
                        health=health,
                        warnings=warnings,
                    )
                )
            last = run.stopped_early or epoch == self.config.epochs
            due = time.monotonic() - checkpointed_at >= checkpoint_interval_seconds
            if on_checkpoint is not None and (last or due):
                on_checkpoint(self._checkpoint(run, schedule, monitor, shuffle))
                checkpointed_at = time.monotonic()

        stopping = self.config.early_stopping
        restored = bool(stopping and stopping.restore_best and run.best_model is not None)
        if restored:
            self.model.load_state_dict(run.best_model)
        last = {k: v for k, v in run.history[-1].items() if k not in ("epoch", "learning_rate")}
        return FitResult(
            epochs_run=run.epoch,
            best_epoch=run.best_epoch,
            best_metrics=run.best_metrics,
            stopped_early=run.stopped_early,
            history=run.history,
            warnings=list(monitor.raised),
            metrics=run.best_metrics if restored else last,
        )

    def _read_epoch(
        self,
        train_loss: torch.Tensor,
        gradient_summary: torch.Tensor,
        val_sums: torch.Tensor,
        dead: tuple[torch.Tensor, int] | None,
        gradients: GradientProbe,
        y_val: torch.Tensor,
    ) -> tuple[dict[str, float], dict[str, Any]]:
        """The epoch's one host-device sync: (metrics, health) from what the device summed."""
        dead_units = [dead[0].float().view(1)] if dead else []
        parts = [train_loss.view(1), gradient_summary, val_sums, *dead_units]
        values = torch.cat(parts).tolist()
        val_start = 1 + len(gradient_summary)
        grad_norm, peak_norm = gradients.read(values[1:val_start])
        val_values = values[val_start : val_start + len(val_sums)]
        metrics = {"train_loss": values[0]}
        if val_values:
            metrics.update(self._val_metrics(val_values, y_val))
        health = {
            "grad_norm": grad_norm,
            "grad_norm_peak": peak_norm,
            "dead_relu_fraction": values[-1] / dead[1] if dead else None,
        }
        return metrics, health

    def _track_best(self, run: RunState, epoch: int, metrics: dict[str, float]) -> None:
        """Best validation loss so far, its weights if they will be restored, early stopping."""
        stopping = self.config.early_stopping
        min_delta = stopping.min_delta if stopping else 0.0
        if "val_loss" not in metrics:
            # Nothing to compare epochs on: the last epoch is the model (no early stopping).
            run.best_epoch, run.best_metrics = epoch, metrics
        elif metrics["val_loss"] < run.best_loss - min_delta:
            run.best_loss, run.best_epoch, run.best_metrics = metrics["val_loss"], epoch, metrics
            if stopping and stopping.restore_best:
                run.best_model = detached_copy(self.model.state_dict())
        elif stopping and epoch - run.best_epoch >= stopping.patience:
            run.stopped_early = True
        run.epoch = epoch

    def _train_epoch(
        self,
        epoch: int,
        x: torch.Tensor,
        y: torch.Tensor,
        batch: int,
        steps: int,
        shuffle: torch.Generator,
        schedule: LearningRateSchedule,
        gradients: GradientProbe,
        should_cancel: CancelCheck | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean training loss, the gradient probe's summary), both left on the device."""
        self.stepped.train()
        # Drawn on the CPU so that one seed shuffles alike on every device (and every rank).
        order = torch.randperm(x.shape[0], generator=shuffle)
        if self.distributed is not None:
            order = self.distributed.shard(order)
        order = self._to_device(order)
        n = order.shape[0]
        loss_sum = torch.zeros((), device=self.device)
        gradients.start_epoch(steps, self.device)
        clip, l1 = self.config.gradient_clip_norm, self.config.l1
        augment = self.augment
        if augment is not None:
            augment.start_epoch(epoch, self.device)
        for step in range(steps):
            if should_cancel is not None and should_cancel():
                raise TrainingCancelled("the job was cancelled")
            self._set_learning_rate(schedule.learning_rate(epoch, step))
            index = order[step * batch : (step + 1) * batch]
            xb, yb = x[index], y[index]
            if augment is not None:
                xb, yb = augment(xb, yb)
            with self._autocast():
                output = self.stepped(xb)
            loss = self.loss(output, yb)
            objective = loss + l1 * self._l1_norm() if l1 else loss
            self.optimizer.zero_grad(set_to_none=True)
            objective.backward()
            if gradients.due(step):
                gradients.sample()
            if clip is not None:
                nn.utils.clip_grad_norm_(self.model.parameters(), clip)
            self.optimizer.step()
            # Weighted by the batch's rows, so a short last batch counts for what it holds.
            loss_sum.add_(loss.detach(), alpha=index.shape[0])
        train_loss = loss_sum / n
        if self.distributed is not None:
            train_loss = self.distributed.mean(train_loss)
        return train_loss, gradients.summary()

    def _evaluate_sums(
        self, x: torch.Tensor, y: torch.Tensor, watch_relus: bool = False
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, int] | None]:
        return validation_sums(
            self.model,
            self.loss,
            self.task,
            x,
            y,
            self._autocast,
            self.dead_relus if watch_relus else None,
        )

    def _val_metrics(self, sums: list[float], y: torch.Tensor) -> dict[str, float]:
        return validation_metrics(self.task, sums, y, self.target_scale)

    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        """Validation loss and the task's metrics, computed on the device, read once."""
        x, y = self._to_device(x), self._to_device(y)
        sums, _ = self._evaluate_sums(x, y)
        return self._val_metrics(sums.tolist(), y)

    def _prepare(self, x_train: torch.Tensor, y_train: torch.Tensor) -> None:
        """Fail fast on a model whose output cannot meet the targets; set class weights."""
        # Eval mode: no dropout, no batch-norm statistics, no random numbers drawn.
        self.model.train(False)
        with torch.inference_mode():
            width = self.model(x_train[:1]).shape[1:]
        if self.task != "classification":
            if width.numel() != y_train.shape[1:].numel():
                raise SpecMismatch(
                    "model",
                    f"the model's output per row {tuple(width)} does not fit the target's "
                    f"{tuple(y_train.shape[1:])}",
                )
            return
        n_classes = width.numel() if width.numel() > 1 else 2
        if len(width) != 1 or (width[0] == 1 and self.loss.kind != "binary_cross_entropy"):
            raise SpecMismatch("model", f"a classifier needs one output per class, not {width}")
        if self.loss.kind == "binary_cross_entropy" and n_classes != 2:
            raise SpecMismatch(
                "training.loss",
                f"binary_cross_entropy needs 2 classes; the model predicts {n_classes}",
            )
        config = self.config
        if self.spec.data.sampling.method == "class_weights":
            config = config.model_copy(update={"class_weights": "balanced"})
        weights = class_weight_vector(config, y_train, n_classes, self.classes)
        self.loss = build_loss(self.config, self.task, weights)

    def _check_finite(self, metrics: dict[str, float], peak_norm: float, epoch: int) -> None:
        broken = [name for name, value in metrics.items() if not math.isfinite(value)]
        if not broken:
            return
        cause = (
            f"the gradients exploded (norm {peak_norm:.1e})"
            if not math.isfinite(peak_norm) or peak_norm > EXPLODING_NORM
            else "the loss overflowed"
        )
        raise TrainingDiverged(
            f"{broken[0]} became {metrics[broken[0]]} in epoch {epoch}: {cause}; lower the "
            "learning rate (training.learning_rate) or add gradient clipping "
            "(training.gradient_clip_norm)"
        )

    def _set_learning_rate(self, lr: float) -> None:
        if lr != self._lr:
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            self._lr = lr

    def _l1_norm(self) -> torch.Tensor:
        return torch.stack([p.abs().sum() for p in self._l1_params]).sum()

    def _autocast(self) -> AbstractContextManager:
        return autocast(self.device, self.autocast_dtype)

    def _to_device(self, tensor: torch.Tensor) -> torch.Tensor:
        return to_device(tensor, self.device)

    def _checkpoint(
        self,
        run: RunState,
        schedule: LearningRateSchedule,
        monitor: HealthMonitor,
        shuffle: torch.Generator,
    ) -> Checkpoint:
        return capture_checkpoint(
            run,
            self.spec.model_dump_json(),
            self.model,
            self.optimizer,
            schedule.state_dict(),
            monitor.state_dict(),
            capture_rng_states(shuffle, self.device),
        )

    def _resume(
        self,
        checkpoint: Checkpoint,
        shuffle: torch.Generator,
        schedule: LearningRateSchedule,
        monitor: HealthMonitor,
    ) -> RunState:
        # Another spec would go on with other settings from this state: refuse, not guess.
        if checkpoint.spec_json != self.spec.model_dump_json():
            raise CheckpointError("the checkpoint was made for another spec")
        self.model.load_state_dict(checkpoint.model)
        self.optimizer.load_state_dict(checkpoint.optimizer)
        schedule.load_state_dict(checkpoint.schedule)
        monitor.load_state_dict(checkpoint.health)
        restore_rng_states(checkpoint.rng, shuffle)
        return RunState.from_checkpoint(checkpoint)
