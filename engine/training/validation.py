"""The per-epoch validation pass: the task's metric sums accumulated on the device in chunks
(so validating a large set never holds all its activations) and read by the caller with the
epoch's other values in one sync, then turned into the metrics a job reports."""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

import torch
from torch import nn

from engine.training.health import DeadReluProbe
from engine.training.losses import TaskLoss

# At most this many rows a chunk, and at most EVAL_CHUNK_ELEMENTS input values (large images).
EVAL_CHUNK_ROWS = 8192
EVAL_CHUNK_ELEMENTS = 2**24


@torch.inference_mode()
def validation_sums(
    model: nn.Module,
    loss: TaskLoss,
    task: str,
    x: torch.Tensor,
    y: torch.Tensor,
    autocast: Callable[[], AbstractContextManager],
    relus: DeadReluProbe | None = None,
) -> tuple[torch.Tensor, tuple[torch.Tensor, int] | None]:
    """The task's metric sums over (x, y), left on the device, and, with a ReLU probe,
    (dead ReLU units, all units)."""
    model.train(False)
    device = x.device
    loss_sum = torch.zeros((), device=device)
    count = torch.zeros((), device=device)
    hits = torch.zeros((), device=device)  # correct rows, or absolute error
    squares = torch.zeros((), device=device)  # squared error
    watching = relus.watching() if relus is not None else nullcontext()
    chunk = max(1, min(EVAL_CHUNK_ROWS, EVAL_CHUNK_ELEMENTS // max(1, x[0].numel())))
    with watching:
        for start in range(0, x.shape[0], chunk):
            xb, yb = x[start : start + chunk], y[start : start + chunk]
            if relus is not None:
                relus.next_batch()
            with autocast():
                output = model(xb)
            output = output.float()
            total, denominator = loss.total(output, yb)
            loss_sum += total
            count += denominator
            if task == "classification":
                hits += (predicted_classes(output) == yb).sum()
            elif task != "reconstruction":
                error = output.reshape(yb.shape) - yb
                hits += error.abs().sum()
                squares += error.square().sum()
    sums = [loss_sum, count, hits, squares]
    if task == "regression":
        sums.append((y - y.mean()).square().sum())
    dead = relus.dead_and_total() if relus is not None else None
    return torch.stack(sums), dead


def validation_metrics(
    task: str, sums: list[float], y: torch.Tensor, target_scale: float
) -> dict[str, float]:
    """val_loss and the task's metrics from validation_sums' values; errors in the target's
    own units (targets are standardised for training)."""
    loss_sum, count, hits, squares = sums[:4]
    metrics = {"val_loss": loss_sum / count}
    rows, elements = y.shape[0], y.numel()
    if task == "classification":
        metrics["val_accuracy"] = hits / rows
    elif task == "regression":
        metrics["val_mae"] = hits / rows * target_scale
        metrics["val_r2"] = 1 - squares / max(sums[4], 1e-12)
    elif task == "forecasting":
        metrics["val_rmse"] = math.sqrt(squares / elements) * target_scale
        metrics["val_mae"] = hits / elements * target_scale
    return metrics


def predicted_classes(output: torch.Tensor) -> torch.Tensor:
    if output.shape[1] == 1:  # binary cross-entropy's single logit
        return (output[:, 0] > 0).long()
    return output.argmax(dim=1)
