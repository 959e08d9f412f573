"""The target profile: the target's class balance or distribution, and how much each feature
tells of it (correlation, mutual information) on a bounded random sample, with the leakage
warnings that suggests."""

from __future__ import annotations

import math
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pyarrow.types as pat

from engine.data.profile.columns import TOP_VALUES, as_float, temporal_ints, top_values
from engine.data.profile.results import (
    ColumnProfile,
    FeatureScore,
    ProfileWarning,
    TableProfile,
    TargetProfile,
)

# kNN mutual information costs about 0.1 s per feature per 10k rows.
SAMPLE_ROWS = 20_000
LEAKAGE_CORRELATION = 0.99
LEAKAGE_MUTUAL_INFORMATION = 0.95
# A numeric target with at most this many distinct integer values is a set of classes.
MAX_CLASSES = 20


def profile_target(
    source: BinaryIO | str,
    table_profile: TableProfile,
    target: str,
    sample_rows: int = SAMPLE_ROWS,
    seed: int = 0,
) -> TargetProfile:
    """Class balance (or distribution) of `target`, and each feature's relation to it.

    Correlation and mutual information are estimated on a random sample of at most
    `sample_rows` rows; class counts and the distribution use every row.
    """
    from sklearn.feature_selection import mutual_info_classif, mutual_info_regression

    by_name = {c.name: c for c in table_profile.columns}
    target_profile = by_name[target]
    parquet = pq.ParquetFile(source)
    rows = parquet.metadata.num_rows
    rng = np.random.default_rng(seed)
    sample = (
        np.sort(rng.choice(rows, size=sample_rows, replace=False)) if rows > sample_rows else None
    )

    def read(name: str) -> pa.ChunkedArray:
        column = parquet.read(columns=[name], use_threads=True).column(0)
        return column if sample is None else column.take(pa.array(sample))

    target_column = parquet.read(columns=[target], use_threads=True).column(0)
    classification = _is_classification(target_profile)
    result = TargetProfile(
        column=target,
        task="classification" if classification else "regression",
        sample_rows=rows if sample is None else sample_rows,
    )
    if classification:
        result.classes = top_values(target_column, limit=max(TOP_VALUES, MAX_CLASSES))
    else:
        result.distribution = target_profile.numeric
    if sample is not None:
        target_column = target_column.take(pa.array(sample))
    y_codes, y_float = _target_arrays(target_column, classification)
    known = y_codes >= 0 if classification else np.isfinite(y_float)
    y_entropy = _entropy(y_codes[known]) if classification else None

    for feature in table_profile.columns:
        if feature.name == target:
            continue
        if feature.type == "text" or feature.unique <= 1:
            result.features.append(FeatureScore(feature.name, "mutual_information", None))
            continue
        column = read(feature.name)
        if feature.type in ("numeric", "boolean", "datetime"):
            x = as_float(_numeric_view(column))
            keep = known & np.isfinite(x)
            discrete = feature.type == "boolean"
        else:
            x = _codes(column).astype(np.float64)
            keep = known.copy()
            discrete = True
        if keep.sum() < 3:
            result.features.append(FeatureScore(feature.name, "mutual_information", None))
            continue
        xs = x[keep]
        if not classification and feature.type in ("numeric", "datetime"):
            score = _pearson(xs, y_float[keep])
            result.features.append(FeatureScore(feature.name, "pearson", score))
            if score is not None and abs(score) >= LEAKAGE_CORRELATION:
                result.warnings.append(_leak(feature.name, f"correlation {score:+.3f}"))
            continue
        if classification:
            mi = mutual_info_classif(
                xs.reshape(-1, 1), y_codes[keep], discrete_features=discrete, random_state=seed
            )[0]
            bound = y_entropy if not discrete else min(y_entropy, _entropy(xs))
        else:
            mi = mutual_info_regression(
                xs.reshape(-1, 1), y_float[keep], discrete_features=discrete, random_state=seed
            )[0]
            bound = _entropy(xs) if discrete else None
        normalised = _normalise(mi, bound)
        result.features.append(FeatureScore(feature.name, "mutual_information", normalised))
        # An identifier (unique per row) trivially "predicts" anything and says nothing.
        repeats = not discrete or np.unique(xs).size <= xs.size / 2
        if classification:
            determines = discrete and repeats and _determines(xs, y_codes[keep])
        else:
            determines = (
                discrete and repeats and _explained(xs, y_float[keep]) >= LEAKAGE_CORRELATION
            )
        high = normalised is not None and normalised >= LEAKAGE_MUTUAL_INFORMATION and repeats
        if determines or high:
            reason = (
                "each of its values goes with one target value"
                if determines
                else f"normalised mutual information {normalised:.3f}"
            )
            result.warnings.append(_leak(feature.name, reason))
    return result


def _is_classification(target: ColumnProfile) -> bool:
    if target.type in ("categorical", "boolean", "text"):
        return True
    if target.type != "numeric" or target.numeric is None:
        return False
    # Integer-valued with few distinct values: labels such as 0/1 or 1..5.
    return target.unique <= MAX_CLASSES and target.dtype.startswith(("int", "uint"))


def _target_arrays(column: pa.ChunkedArray, classification: bool) -> tuple[np.ndarray, np.ndarray]:
    if classification:
        return _codes(column), np.empty(0)
    return np.empty(0, dtype=np.int64), as_float(column)


def _codes(column: pa.ChunkedArray) -> np.ndarray:
    """Category codes 0..k-1, -1 for missing."""
    if pat.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    uniques = pc.unique(column).drop_null()
    return pc.fill_null(pc.index_in(column, value_set=uniques), -1).to_numpy().astype(np.int64)


def _numeric_view(column: pa.ChunkedArray) -> pa.ChunkedArray:
    if pat.is_boolean(column.type):
        return pc.cast(column, pa.int8())
    if pat.is_temporal(column.type):
        return temporal_ints(column)
    return column


def _entropy(codes: np.ndarray) -> float:
    _, counts = np.unique(codes, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())


def _normalise(mi: float, bound: float | None) -> float | None:
    if bound is None:
        # Continuous on both sides: map MI to an informational correlation in [0, 1].
        return float(math.sqrt(1 - math.exp(-2 * max(mi, 0.0))))
    if bound <= 0:
        return None
    return float(min(max(mi / bound, 0.0), 1.0))


def _pearson(x: np.ndarray, y: np.ndarray) -> float | None:
    if x.size < 3 or x.std() == 0 or y.std() == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1])


def _determines(x: np.ndarray, y: np.ndarray) -> bool:
    """Every value of `x` goes with a single class (and there is more than one class)."""
    pairs = np.unique(np.stack([x, y.astype(np.float64)]), axis=1)
    return pairs.shape[1] == np.unique(x).size and np.unique(y).size > 1


def _explained(x: np.ndarray, y: np.ndarray) -> float:
    """Share of the variance of `y` explained by the groups of `x` (the correlation ratio²)."""
    total = y.var()
    if total == 0:
        return 0.0
    _, groups = np.unique(x, return_inverse=True)
    means = np.bincount(groups, weights=y) / np.bincount(groups)
    return float(1 - ((y - means[groups]) ** 2).mean() / total)


def _leak(column: str, reason: str) -> ProfileWarning:
    return ProfileWarning(
        column,
        "leakage_suspect",
        f"predicts the target almost perfectly ({reason}); check it is known at prediction time",
    )
