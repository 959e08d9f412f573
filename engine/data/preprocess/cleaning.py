"""Rows removed before fitting: rows without a target, and from the training split only,
duplicates, rows missing a value whose column says impute 'drop', and outliers whose column
says action 'drop'.

At predict time there is no row to drop, so the same fitted rule stands in (see `fit`): a
missing value takes the training median (numbers) or most frequent category, an outlier is
clipped to the bounds. `outlier_bounds` lives here and `fit` reuses it, so the bounds that drop
a training row are the bounds that clip at predict time.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.data.preprocess.columns import column_kind, column_settings, resolve_features
from engine.data.preprocess.encoding import as_float
from engine.errors import DataError
from engine.spec import Spec
from engine.spec.data import OutlierConfig


def drop_missing_target(table: pa.Table, target: str | None) -> pa.Table:
    if target is None:
        return table
    column = table.column(target)
    if column.null_count == 0:
        return table
    return table.filter(pc.is_valid(column))


def clean_training_rows(spec: Spec, train: pa.Table) -> tuple[pa.Table, dict[str, int]]:
    """The training rows to fit and train on: duplicates, rows missing a value whose column
    says impute 'drop', and outlier rows whose column says action 'drop' are removed here,
    from the training split only. Returns the rows kept and how many each rule removed."""
    config = spec.data.preprocess
    names = resolve_features(spec, train.schema)
    settings = {
        n: column_settings(config, n, column_kind(train.schema.field(n).type))[0] for n in names
    }
    before, removed = train.num_rows, {}

    if config.drop_duplicates:
        compared = list(dict.fromkeys([*names, *([spec.target] if spec.target else [])]))
        train = train.take(_first_occurrences(train.select(compared)))
        removed["duplicates"] = before - train.num_rows

    needed = [n for n in names if settings[n].impute == "drop"]
    if needed:
        keep = np.logical_and.reduce([_present(train.column(n)) for n in needed])
        removed["missing"] = int((~keep).sum())
        train = train.filter(pa.array(keep))

    judged = [n for n in names if settings[n].outliers and settings[n].outliers.action == "drop"]
    if judged:
        # Bounds of every judged column come from the same rows, before any is dropped.
        keep = np.ones(train.num_rows, dtype=bool)
        for name in judged:
            values = as_float(train.column(name))
            lower, upper = outlier_bounds(values[~np.isnan(values)], settings[name].outliers)
            if lower is not None:
                keep &= ~((values < lower) | (values > upper))
        removed["outliers"] = int((~keep).sum())
        train = train.filter(pa.array(keep))

    if train.num_rows == 0 and before > 0:
        counts = ", ".join(f"{rule}: {n}" for rule, n in removed.items())
        raise DataError(
            f"cleaning removed all {before} training rows ({counts}); loosen data.preprocess"
        )
    return train, removed


def _first_occurrences(table: pa.Table) -> pa.Array:
    """Indices of the first row of each distinct row, in order."""
    row = "__trainyard_row__"
    numbered = table.append_column(row, pa.array(np.arange(table.num_rows)))
    grouped = numbered.group_by(table.column_names, use_threads=False).aggregate([(row, "min")])
    return pa.array(np.sort(grouped.column(f"{row}_min").to_numpy()))


def _present(column: pa.ChunkedArray) -> np.ndarray:
    if column_kind(column.type) == "numeric":
        return ~np.isnan(as_float(column))
    return pc.is_valid(column).to_numpy(zero_copy_only=False)


def outlier_bounds(present: np.ndarray, config: OutlierConfig) -> tuple[float | None, float | None]:
    """(lower, upper) around the present training values, by IQR fences or mean ± k std;
    (None, None) for an empty column."""
    if present.size == 0:
        return None, None
    if config.method == "iqr":
        q1, q3 = np.percentile(present, [25, 75])
        reach = (config.threshold or 1.5) * (q3 - q1)
        return float(q1 - reach), float(q3 + reach)
    reach = (config.threshold or 3.0) * float(present.std())
    return float(present.mean() - reach), float(present.mean() + reach)
