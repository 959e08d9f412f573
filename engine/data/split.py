"""Train / validation / test row indices, stratified by class where the data allows it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import train_test_split

from engine.errors import DataError
from engine.spec import SplitConfig


@dataclass
class SplitIndices:
    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray


def split_rows(
    n_rows: int, config: SplitConfig, seed: int, labels: np.ndarray | None = None
) -> SplitIndices:
    """`labels` (class per row) turns on stratification when every class has 2+ rows."""
    rows = np.arange(n_rows)
    held_out = config.validation + config.test
    if n_rows < 3:
        raise DataError(f"the dataset has {n_rows} usable rows; training needs at least 3")
    stratify = labels if config.stratify and _can_stratify(labels, held_out, n_rows) else None
    train, rest = train_test_split(rows, test_size=held_out, random_state=seed, stratify=stratify)
    if config.test == 0.0:
        return SplitIndices(np.sort(train), np.sort(rest), rows[:0])
    rest_labels = labels[rest] if stratify is not None else None
    rest_stratify = (
        rest_labels if _can_stratify(rest_labels, config.test / held_out, len(rest)) else None
    )
    validation, test = train_test_split(
        rest, test_size=config.test / held_out, random_state=seed, stratify=rest_stratify
    )
    return SplitIndices(np.sort(train), np.sort(validation), np.sort(test))


def _can_stratify(labels: np.ndarray | None, fraction: float, n_rows: int) -> bool:
    if labels is None:
        return False
    _, counts = np.unique(labels, return_counts=True)
    n_classes = len(counts)
    held = int(np.ceil(fraction * n_rows))
    return counts.min() >= 2 and n_classes <= held and n_classes <= n_rows - held
