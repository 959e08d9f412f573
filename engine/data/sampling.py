"""Class imbalance: under- and over-sampling of the training rows, or class weights in the loss.

Only the training rows are resampled: validation and test keep the class balance the world
has, so their metrics say how the model will do there. Resampling is seeded and drawn once,
before training; the trainer's shuffle then mixes the rows as usual.
"""

from __future__ import annotations

import numpy as np

from engine.errors import SpecMismatch
from engine.spec import Spec


def check_sampling(spec: Spec) -> None:
    """Refuse a sampling method that cannot apply; raises SpecMismatch naming the field."""
    method = spec.data.sampling.method
    if method == "none":
        return
    if spec.task != "classification":
        raise SpecMismatch(
            "data.sampling.method", f"{method} balances classes; it needs task classification"
        )
    if spec.training.class_weights is not None:
        # Both correct the same imbalance: together they over-correct it.
        raise SpecMismatch(
            "data.sampling.method",
            f"{method} and training.class_weights both correct class imbalance; use one",
        )


def resample(labels: np.ndarray, method: str, seed: int) -> np.ndarray | None:
    """Row indices into `labels` (class index per training row) after under- or over-sampling,
    sorted; None when the method resamples nothing (none, class_weights)."""
    if method not in ("undersample", "oversample"):
        return None
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    target = counts.min() if method == "undersample" else counts.max()
    picked = []
    for label, count in zip(classes, counts, strict=True):
        rows = np.flatnonzero(labels == label)
        if method == "undersample":
            picked.append(rng.choice(rows, size=target, replace=False))
        else:
            # Every row once, then random repeats up to the largest class.
            picked += [rows, rng.choice(rows, size=target - count, replace=True)]
    return np.sort(np.concatenate(picked))


def class_counts(labels: np.ndarray, classes: list) -> dict[str, int]:
    """Rows per class label, for the job's report."""
    counts = np.bincount(labels, minlength=len(classes))
    return {str(label): int(n) for label, n in zip(classes, counts, strict=True)}
