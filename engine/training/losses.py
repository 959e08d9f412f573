"""The loss a spec asks for, as one callable the training loop and the evaluation share.

`TaskLoss(output, target)` is the mean loss of a batch (what backward sees); `total` gives the
summed loss and its denominator, so evaluation in chunks adds up to the exact mean over all
rows. Class weights follow torch's convention: a weighted mean, divided by the sum of the
weights of the rows' classes.

binary_cross_entropy takes a model with one output (the logit of class 1) or two (the logit
is output[:, 1] - output[:, 0], so sigmoid(logit) is exactly softmax's probability of class 1
and a two-output model predicts with softmax as every other classifier does).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from engine.errors import SpecMismatch
from engine.spec.training import TrainingConfig, resolve_loss


class TaskLoss:
    def __init__(
        self,
        kind: str,
        class_weights: torch.Tensor | None = None,
        label_smoothing: float = 0.0,
    ) -> None:
        self.kind = kind
        self.class_weights = class_weights
        self.label_smoothing = label_smoothing

    def __call__(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.kind == "cross_entropy":
            # Fast path: exactly what a hand-written loop calls.
            return F.cross_entropy(
                output.float(),
                target,
                weight=self.class_weights,
                label_smoothing=self.label_smoothing,
            )
        total, count = self.total(output, target)
        return total / count

    def total(
        self, output: torch.Tensor, target: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | int]:
        """(sum of the rows' losses, what the mean divides it by)."""
        output = output.float()
        match self.kind:
            case "cross_entropy":
                total = F.cross_entropy(
                    output,
                    target,
                    weight=self.class_weights,
                    label_smoothing=self.label_smoothing,
                    reduction="sum",
                )
                return total, self._denominator(target)
            case "binary_cross_entropy":
                logit = binary_logit(output)
                soft = target.float() * (1 - self.label_smoothing) + 0.5 * self.label_smoothing
                losses = F.binary_cross_entropy_with_logits(logit, soft, reduction="none")
                if self.class_weights is not None:
                    losses = losses * self.class_weights[target]
                return losses.sum(), self._denominator(target)
        prediction = output.reshape(target.shape)
        reduce = {"mse": F.mse_loss, "mae": F.l1_loss, "huber": F.huber_loss}[self.kind]
        return reduce(prediction, target, reduction="sum"), target.numel()

    def _denominator(self, target: torch.Tensor) -> torch.Tensor | int:
        if self.class_weights is None:
            return target.shape[0]
        return self.class_weights[target].sum()


def binary_logit(output: torch.Tensor) -> torch.Tensor:
    if output.ndim != 2 or output.shape[1] not in (1, 2):
        raise SpecMismatch(
            "training.loss",
            f"binary_cross_entropy needs a model with 1 or 2 outputs; it has {output.shape[1:]}",
        )
    return output[:, 0] if output.shape[1] == 1 else output[:, 1] - output[:, 0]


def class_weight_vector(
    config: TrainingConfig,
    y_train: torch.Tensor,
    n_classes: int,
    classes: Sequence[str] | None,
) -> torch.Tensor | None:
    """The per-class weights as a float tensor on y_train's device, or None."""
    weights = config.class_weights
    if weights is None:
        return None
    if weights == "balanced":
        # scikit-learn's "balanced": n_rows / (n_classes * rows of the class). A class absent
        # from the training rows never weighs a row, so its weight does not matter.
        counts = torch.bincount(y_train, minlength=n_classes).float().clamp_min(1)
        return y_train.shape[0] / (n_classes * counts)
    names = [str(c) for c in classes] if classes is not None else [str(i) for i in range(n_classes)]
    unknown = sorted(set(weights) - set(names))
    if unknown:
        raise SpecMismatch(
            "training.class_weights",
            f"unknown class {unknown[0]!r}; the classes are {', '.join(names)}",
        )
    return torch.tensor([weights.get(name, 1.0) for name in names], device=y_train.device)


def build_loss(
    config: TrainingConfig,
    task: str,
    class_weights: torch.Tensor | None = None,
) -> TaskLoss:
    smoothing = config.label_smoothing if task == "classification" else 0.0
    return TaskLoss(resolve_loss(config, task), class_weights, smoothing)
