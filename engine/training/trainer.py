"""The training loop: one class, one life (`fit`), as fast as a careful hand-written loop.

Data that fits stays as tensors on the device and is sliced by a shuffled index; losses and
metrics accumulate on the device and are read once per epoch; the only per-step Python is the
cancel check, which reads a flag.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from engine.errors import TrainingCancelled, TrainingDiverged
from engine.spec import Spec, TrainingConfig


@dataclass
class EpochReport:
    epoch: int
    epochs: int
    metrics: dict[str, float]
    samples_per_second: float
    seconds: float


@dataclass
class FitResult:
    epochs_run: int
    best_epoch: int
    best_metrics: dict[str, float]
    stopped_early: bool
    history: list[dict[str, float]] = field(default_factory=list)


EpochCallback = Callable[[EpochReport], None]
CancelCheck = Callable[[], bool]


def resolve_device(requested: str) -> torch.device:
    if requested == "cuda" or (requested == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def build_optimizer(config: TrainingConfig, params) -> torch.optim.Optimizer:
    lr, wd = config.learning_rate, config.weight_decay
    match config.optimizer:
        case "sgd":
            return torch.optim.SGD(
                params, lr=lr, momentum=config.momentum, nesterov=config.nesterov, weight_decay=wd
            )
        case "adam":
            return torch.optim.Adam(params, lr=lr, weight_decay=wd)
        case "adamw":
            return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
        case "rmsprop":
            return torch.optim.RMSprop(params, lr=lr, momentum=config.momentum, weight_decay=wd)
        case "adagrad":
            return torch.optim.Adagrad(params, lr=lr, weight_decay=wd)
    raise ValueError(f"unknown optimizer {config.optimizer!r}")


class Trainer:
    def __init__(
        self, spec: Spec, model: nn.Module, device: torch.device, target_scale: float = 1.0
    ) -> None:
        self.spec = spec
        self.config = spec.training
        self.device = device
        self.model = model.to(device)
        self.classification = spec.task == "classification"
        self.loss_fn = nn.CrossEntropyLoss() if self.classification else nn.MSELoss()
        self.optimizer = build_optimizer(self.config, self.model.parameters())
        # Regression targets are standardised; MAE is reported in the target's own units.
        self.target_scale = target_scale
        self.autocast_dtype = torch.bfloat16 if device.type == "cuda" else None

    def fit(
        self,
        x_train: torch.Tensor,
        y_train: torch.Tensor,
        x_val: torch.Tensor,
        y_val: torch.Tensor,
        on_epoch: EpochCallback | None = None,
        should_cancel: CancelCheck | None = None,
    ) -> FitResult:
        x_train, y_train = self._to_device(x_train), self._to_device(y_train)
        x_val, y_val = self._to_device(x_val), self._to_device(y_val)
        n = x_train.shape[0]
        batch = n if self.config.batch_size == "full" else min(self.config.batch_size, n)
        generator = torch.Generator(device="cpu").manual_seed(self.spec.seed)
        stopping = self.config.early_stopping

        best_loss, best_epoch, best_state, best_metrics = math.inf, 0, None, {}
        history: list[dict[str, float]] = []
        epoch = 0
        stopped_early = False
        for epoch in range(1, self.config.epochs + 1):
            started = time.perf_counter()
            train_loss = self._train_epoch(x_train, y_train, batch, generator, should_cancel)
            metrics = {"train_loss": train_loss, **self.evaluate(x_val, y_val)}
            broken = [name for name, value in metrics.items() if not math.isfinite(value)]
            if broken:
                raise TrainingDiverged(
                    f"{broken[0]} became {metrics[broken[0]]} in epoch {epoch}; lower the "
                    "learning rate or add gradient clipping (training.gradient_clip_norm)"
                )
            seconds = time.perf_counter() - started
            history.append({"epoch": epoch, **metrics})
            if on_epoch is not None:
                on_epoch(EpochReport(epoch, self.config.epochs, metrics, n / seconds, seconds))

            min_delta = stopping.min_delta if stopping else 0.0
            if metrics["val_loss"] < best_loss - min_delta:
                best_loss, best_epoch, best_metrics = metrics["val_loss"], epoch, metrics
                best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            elif stopping and epoch - best_epoch >= stopping.patience:
                stopped_early = True
                break

        # Early stopping restores the weights of the best validation epoch.
        if best_state is not None:
            self.model.load_state_dict(best_state)
        return FitResult(epoch, best_epoch, best_metrics, stopped_early, history)

    def _to_device(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.device.type == "cuda":
            return tensor.pin_memory().to(self.device, non_blocking=True)
        return tensor.to(self.device)

    def _train_epoch(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch: int,
        generator: torch.Generator,
        should_cancel: CancelCheck | None,
    ) -> float:
        self.model.train()
        n = x.shape[0]
        order = torch.randperm(n, generator=generator).to(self.device)
        loss_sum = torch.zeros((), device=self.device)
        clip = self.config.gradient_clip_norm
        for start in range(0, n, batch):
            if should_cancel is not None and should_cancel():
                raise TrainingCancelled("the job was cancelled")
            index = order[start : start + batch]
            xb, yb = x[index], y[index]
            with torch.autocast(
                self.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None
            ):
                loss = self._loss(self.model(xb), yb)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if clip is not None:
                nn.utils.clip_grad_norm_(self.model.parameters(), clip)
            self.optimizer.step()
            loss_sum += loss.detach() * xb.shape[0]
        return float(loss_sum) / n

    def _loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.classification:
            return self.loss_fn(output.float(), target)
        return self.loss_fn(output.float().squeeze(-1), target)

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        """Validation loss and the task's metrics, computed on the device, read once."""
        self.model.eval()
        with torch.autocast(
            self.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None
        ):
            output = self.model(x).float()
        loss = self._loss(output, y)
        if self.classification:
            accuracy = (output.argmax(dim=1) == y).float().mean()
            values = torch.stack([loss, accuracy]).tolist()
            return {"val_loss": values[0], "val_accuracy": values[1]}
        prediction = output.squeeze(-1)
        mae = (prediction - y).abs().mean() * self.target_scale
        total = ((y - y.mean()) ** 2).sum()
        r2 = 1 - ((y - prediction) ** 2).sum() / total.clamp_min(1e-12)
        values = torch.stack([loss, mae, r2]).tolist()
        return {"val_loss": values[0], "val_mae": values[1], "val_r2": values[2]}
