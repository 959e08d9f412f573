"""Train / validation / test row indices, k-fold cross-validation, and the leakage guard.

Three ways to hold rows out, one per kind of data:
- random, stratified by class where the classes allow it (scikit-learn's train_test_split);
- by group: every row of a group (a patient, a user) lands on one side (GroupShuffleSplit);
- in time order: the latest rows are validation, then test (`rank`, a row's place in time).

The test rows are held out first, so cross-validation folds and the final model's validation
rows both come from the same non-test pool, and the test rows are touched once, at the end.
Fractions are of all rows (of all groups, for a group split); a test fraction that rounds to
no rows gives an empty test split, which tiny datasets get instead of an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sklearn.model_selection import (
    GroupKFold,
    GroupShuffleSplit,
    RepeatedKFold,
    RepeatedStratifiedKFold,
    TimeSeriesSplit,
    train_test_split,
)

from engine.errors import DataError
from engine.spec.data import SplitConfig


@dataclass
class SplitIndices:
    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray


def split_rows(
    n_rows: int,
    config: SplitConfig,
    seed: int,
    labels: np.ndarray | None = None,
    groups: np.ndarray | None = None,
    rank: np.ndarray | None = None,
) -> SplitIndices:
    """`labels` (class per row) turns on stratification when every class has 2+ rows; `groups`
    (a group code per row) keeps groups whole; `rank` (each row's place in time) splits in
    time order. At most one of groups and rank."""
    if n_rows < 3:
        raise DataError(f"the dataset has {n_rows} usable rows; training needs at least 3")
    labels = labels if config.stratify else None
    rows = np.arange(n_rows)
    units = _units(rows, groups)
    if groups is not None and units < 2:
        raise DataError(f"data.split.group: {units} group(s); a group split needs at least 2")
    rest, test = _hold_out(rows, config.test, units, seed, labels, groups, rank, at_least=0)
    # Validation 0 holds out nothing: every non-test row trains (a final refit).
    train, validation = _hold_out(
        rest, config.validation, units, seed, labels, groups, rank, at_least=_least(config)
    )
    return SplitIndices(np.sort(train), np.sort(validation), np.sort(test))


def cross_validation_splits(
    pool: np.ndarray,
    config: SplitConfig,
    seed: int,
    labels: np.ndarray | None = None,
    groups: np.ndarray | None = None,
    rank: np.ndarray | None = None,
    gap: int = 0,
) -> list[SplitIndices]:
    """k folds over the non-test rows `pool`: each fold's `test` is its held-out part, and its
    training part gives up `config.validation` of its rows to a validation split for early
    stopping, so no fold model is stopped on the rows it is scored on.

    Stratified for classes (when every class has k rows), whole groups for a group split, and
    for time order an expanding window (TimeSeriesSplit): each fold trains on the past only.
    `gap` rows are left out before each time-ordered fold (forecast horizons that straddle).

    `config.repeats` cuts the k folds that many times, each from a fresh shuffle
    (RepeatedKFold, RepeatedStratifiedKFold; for groups GroupKFold seeded seed + repeat):
    k x repeats splits, repeat by repeat (the first repeat is the unrepeated k folds)."""
    k = config.folds
    if k is None:
        return []
    labels = labels if config.stratify else None
    units = _units(pool, groups)
    if units < 2 * k:
        unit = "groups" if groups is not None else "rows"
        raise DataError(
            f"data.split.folds: {k} folds need at least {2 * k} {unit} outside the test split; "
            f"there are {units}"
        )
    if rank is not None:
        ordered = pool[np.argsort(rank[pool], kind="stable")]
        pairs = TimeSeriesSplit(n_splits=k, gap=gap).split(ordered)
        folds = [(ordered[tr], ordered[te]) for tr, te in pairs]
    else:
        y = labels[pool] if labels is not None else None
        g = groups[pool] if groups is not None else None
        pairs = _partitions(len(pool), k, config.repeats, seed, y, g)
        folds = [(pool[tr], pool[te]) for tr, te in pairs]
    splits = []
    for fold_train, held in folds:
        fold_units = _units(fold_train, groups)
        train, validation = _hold_out(
            fold_train,
            config.validation,
            fold_units,
            seed,
            labels,
            groups,
            rank,
            at_least=_least(config),
        )
        splits.append(SplitIndices(np.sort(train), np.sort(validation), np.sort(held)))
    return splits


def _partitions(
    n: int,
    k: int,
    repeats: int,
    seed: int,
    labels: np.ndarray | None,
    groups: np.ndarray | None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, held) positions among `n` rows of `repeats` partitions into k folds, repeat by
    repeat."""
    positions = np.arange(n)
    if groups is not None:
        return [
            pair
            for repeat in range(repeats)
            for pair in GroupKFold(n_splits=k, shuffle=True, random_state=seed + repeat).split(
                positions, labels, groups
            )
        ]
    if labels is not None and np.unique(labels, return_counts=True)[1].min() >= k:
        splitter = RepeatedStratifiedKFold(n_splits=k, n_repeats=repeats, random_state=seed)
    else:
        splitter = RepeatedKFold(n_splits=k, n_repeats=repeats, random_state=seed)
    return list(splitter.split(positions, labels))


def row_codes(parts: Sequence[np.ndarray]) -> np.ndarray:
    """One integer per row, equal for two rows exactly when they are equal in every part.

    Each part is an array with rows first (images, labels, a table's column codes); rows are
    compared by their bytes, so the comparison is exact and vectorised."""
    codes = [np.unique(_row_view(part), return_inverse=True)[1].reshape(-1) for part in parts]
    if len(codes) == 1:
        return codes[0]
    stacked = np.stack(codes, axis=1).astype(np.int64)
    return np.unique(_row_view(stacked), return_inverse=True)[1].reshape(-1)


def table_row_codes(table: pa.Table) -> np.ndarray:
    """`row_codes` for a table's rows; a missing value equals a missing value."""
    columns = [
        pc.dictionary_encode(column.combine_chunks())
        .indices.fill_null(-1)
        .to_numpy(zero_copy_only=False)
        .astype(np.int64)
        for column in table.columns
    ]
    if not columns:
        return np.zeros(table.num_rows, dtype=np.int64)
    return row_codes([np.stack(columns, axis=1)])


def seen_in_training(train_codes: np.ndarray, held_out_codes: np.ndarray) -> np.ndarray:
    """The leakage guard: which held-out rows repeat a training row (by `row_codes`)."""
    return np.isin(held_out_codes, train_codes)


def _hold_out(
    rows: np.ndarray,
    fraction: float,
    total_units: int,
    seed: int,
    labels: np.ndarray | None,
    groups: np.ndarray | None,
    rank: np.ndarray | None,
    at_least: int,
) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held): `fraction` of `total_units` rows (or groups) taken from `rows`, at least
    `at_least`, always leaving one unit to keep."""
    units = _units(rows, groups)
    wanted = max(int(np.floor(fraction * total_units + 0.5)), at_least)
    count = min(wanted, units - 1)
    if count <= 0:
        return rows, rows[:0]
    if rank is not None:
        ordered = rows[np.argsort(rank[rows], kind="stable")]
        return ordered[:-count], ordered[-count:]
    if groups is not None:
        splitter = GroupShuffleSplit(n_splits=1, test_size=count, random_state=seed)
        kept, held = next(splitter.split(rows, groups=groups[rows]))
        return rows[kept], rows[held]
    part = labels[rows] if labels is not None else None
    stratify = part if _can_stratify(part, count, len(rows)) else None
    kept, held = train_test_split(rows, test_size=count, random_state=seed, stratify=stratify)
    return kept, held


def _least(config: SplitConfig) -> int:
    """The fewest validation rows a split keeps: one, unless validation is 0."""
    return 1 if config.validation > 0 else 0


def _units(rows: np.ndarray, groups: np.ndarray | None) -> int:
    return len(rows) if groups is None else len(np.unique(groups[rows]))


def _can_stratify(labels: np.ndarray | None, held: int, n_rows: int) -> bool:
    if labels is None:
        return False
    _, counts = np.unique(labels, return_counts=True)
    n_classes = len(counts)
    return counts.min() >= 2 and n_classes <= held and n_classes <= n_rows - held


def _flat(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(a).reshape(len(a), -1))


def _row_view(a: np.ndarray) -> np.ndarray:
    """Each row as one opaque value, so np.unique and np.isin compare whole rows."""
    a = _flat(a)
    return a.view(np.dtype((np.void, a.dtype.itemsize * a.shape[1]))).reshape(-1)
