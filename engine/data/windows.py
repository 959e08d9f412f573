"""Forecasting from a time series table: sliding windows, a time-ordered split, a scaler fitted
on the training period only, and the naive last-value forecast that a model must beat.

Rows in file order are time order. Channel 0 of every window is the target's own past; the
other channels are the feature columns in the order given. Window i holds rows i .. i+window-1
and its targets are rows i+window .. i+window+horizon-1.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from numpy.lib.stride_tricks import sliding_window_view

from engine.data.arrays.dataset import DEFAULT_MAX_ELEMENTS
from engine.data.arrays.instances import decode_instances
from engine.errors import DataError, SpecMismatch

TARGET_CHANNEL = 0
# Windows are scattered back onto the series in blocks of this many, so fitting the scaler
# never copies every training window at once.
FIT_BLOCK_WINDOWS = 4096


def window_channels(target: str, features: list[str]) -> list[str]:
    """The channel order of a window: the target's past first, then the other features."""
    if len(set(features)) != len(features):
        raise SpecMismatch("features", "lists a column twice")
    return [target, *(name for name in features if name != target)]


def make_windows(
    table: pa.Table,
    target: str,
    features: list[str],
    window: int,
    horizon: int,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> tuple[np.ndarray, np.ndarray]:
    """x float32 [N, window, C] and y float32 [N, horizon], N = rows - window - horizon + 1."""
    if window < 1 or horizon < 1:
        raise DataError("window and horizon must be at least 1")
    channels = window_channels(target, features)
    series = _series(table, target, features, channels)
    rows = series.shape[0]
    n = rows - window - horizon + 1
    if n < 1:
        raise DataError(
            f"the series has {rows} rows; a window of {window} and a horizon of {horizon} "
            f"need at least {window + horizon}"
        )
    if n * window * len(channels) > max_elements:
        raise DataError(
            f"{n:,} windows of {window}x{len(channels)} hold {n * window * len(channels):,} "
            f"values; the limit is {max_elements:,}: choose a shorter window"
        )
    # Views first, one copy at the end: [rows - window + 1, C, window] -> [N, window, C].
    x = sliding_window_view(series, window, axis=0)[:n].transpose(0, 2, 1)
    y = sliding_window_view(series[window:, TARGET_CHANNEL], horizon)[:n]
    return np.ascontiguousarray(x, dtype=np.float32), np.ascontiguousarray(y, dtype=np.float32)


def series_of(table: pa.Table, channels: list[str]) -> np.ndarray:
    """A stored series' channels (the target first, as `WindowScaler.channels` lists them) as
    float64 [rows, C], missing values forward-filled: what batch forecasts cut windows from."""
    return _series(table, channels[0], channels[1:], channels)


def windows_ending(series: np.ndarray, window: int, start: int, stop: int) -> np.ndarray:
    """The windows [stop - start, window, C] whose last rows are start + window - 1 ..
    stop + window - 2 of `series`: window i ends at row i + window - 1."""
    part = series[start : stop + window - 1]
    x = sliding_window_view(part, window, axis=0).transpose(0, 2, 1)
    return np.ascontiguousarray(x, dtype=np.float32)


def _series(table: pa.Table, target: str, features: list[str], channels: list[str]) -> np.ndarray:
    """The channels as float64 [rows, C], missing values forward-filled."""
    if target not in table.column_names:
        raise SpecMismatch("target", f"{target!r} is not a column of the dataset")
    for i, name in enumerate(features):
        if name not in table.column_names:
            raise SpecMismatch(f"features[{i}]", f"{name!r} is not a column of the dataset")
    columns = []
    for name in channels:
        column = table.column(name)
        kind = column.type
        if not (
            pa.types.is_integer(kind)
            or pa.types.is_floating(kind)
            or pa.types.is_decimal(kind)
            or pa.types.is_boolean(kind)
        ):
            field = "target" if name == target else f"features[{features.index(name)}]"
            raise SpecMismatch(field, f"column {name!r} is not numeric; windows need numbers")
        columns.append(column.cast(pa.float64()).to_numpy(zero_copy_only=False))
    series = np.stack(columns, axis=1)
    if np.isinf(series).any():
        raise DataError("the series holds infinite values")
    return _forward_fill(series, channels)


def _forward_fill(series: np.ndarray, channels: list[str]) -> np.ndarray:
    """Each missing value (null or NaN) takes the last value seen before it in its column."""
    missing = np.isnan(series)
    if not missing.any():
        return series
    rows = np.arange(series.shape[0])[:, None]
    last_seen = np.maximum.accumulate(np.where(missing, -1, rows), axis=0)
    for c, name in enumerate(channels):
        if last_seen[0, c] < 0:
            seen = last_seen[:, c] >= 0
            count = int(np.argmax(seen)) if seen.any() else series.shape[0]
            raise DataError(
                f"column {name!r} is missing its first {count} value(s); forward-fill has "
                "nothing earlier to carry"
            )
    return np.take_along_axis(series, last_seen, axis=0)


def time_ordered_split(
    n: int, validation: float, test: float, horizon: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Window indices for train, validation and test, in time order, no shuffling.

    The periods are cut on the target steps: a window belongs to the period that holds all of
    its targets. With horizon > 1 the few windows whose targets straddle a boundary are left
    out, so no target value is trained on and then scored.
    """
    if not (0.0 <= validation < 1.0 and 0.0 <= test < 1.0 and validation + test < 1.0):
        raise DataError("validation and test must be fractions that leave room for training")
    steps = n + horizon - 1  # target steps covered by the n windows
    n_val = max(1, round(steps * validation)) if validation > 0 else 0
    n_test = max(1, round(steps * test)) if test > 0 else 0
    train_end, val_end = steps - n_val - n_test, steps - n_test
    # Window i's targets are steps i .. i + horizon - 1.
    starts = np.arange(n)
    ends = starts + horizon - 1
    train = starts[ends < train_end]
    val = starts[(starts >= train_end) & (ends < val_end)]
    test_idx = starts[starts >= val_end]
    for name, part, wanted in (("training", train, 1.0), ("validation", val, validation)):
        if wanted > 0 and part.size == 0:
            raise DataError(
                f"{n} windows leave no {name} window; use a longer series or a shorter horizon"
            )
    # No test window (a short series, a long horizon) is not an error: the job says it was
    # not evaluated.
    return train, val, test_idx


def naive_forecast(
    x: np.ndarray, target_channel: int = TARGET_CHANNEL, horizon: int = 1
) -> np.ndarray:
    """The last observed target value repeated over the horizon: [N, horizon]."""
    last = x[:, -1, target_channel : target_channel + 1]
    return np.repeat(last, horizon, axis=1)


@dataclass
class WindowScaler:
    """Per-channel standardisation of windows, fitted on the training period.

    The target is the change from the window's last observed value, in units of that change's
    spread on the training period: a level never seen in training (a trend carried past it)
    then needs no extrapolation, and predicting zero change is the naive forecast."""

    channels: list[str]
    window: int
    horizon: int
    mean: list[float]
    std: list[float]
    change_scale: float = 1.0

    @property
    def input_shape(self) -> list[int]:
        return [self.window, len(self.channels)]

    @property
    def output_dim(self) -> int:
        return self.horizon

    def transform(self, x: np.ndarray) -> np.ndarray:
        if list(x.shape[1:]) != self.input_shape:
            raise DataError(f"windows have shape {list(x.shape[1:])}; expected {self.input_shape}")
        mean = np.asarray(self.mean, dtype=np.float32)
        std = np.asarray(self.std, dtype=np.float32)
        return ((x - mean) / std).astype(np.float32, copy=False)

    def encode_target(self, y: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Raw targets [N, horizon] of raw windows x -> scaled change from the last value."""
        last = x[:, -1, TARGET_CHANNEL : TARGET_CHANNEL + 1]
        return ((y - last) / self.change_scale).astype(np.float32, copy=False)

    def decode_target(self, values: np.ndarray, x_scaled: np.ndarray) -> np.ndarray:
        """Model outputs [N, horizon] for transformed windows -> forecasts in target units."""
        last = (
            x_scaled[:, -1, TARGET_CHANNEL : TARGET_CHANNEL + 1] * self.std[TARGET_CHANNEL]
            + self.mean[TARGET_CHANNEL]
        )
        return last + values * self.change_scale

    def instances_to_array(self, instances: list) -> np.ndarray:
        """Predict instances: each a [window, C] nested list of raw values, oldest row first."""
        return decode_instances(instances, self.input_shape)

    def to_dict(self) -> dict[str, Any]:
        return {"version": 1, "type": "windows", **asdict(self)}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> WindowScaler:
        return cls(**{k: v for k, v in state.items() if k not in ("version", "type")})


def fit_window_scaler(
    x: np.ndarray,
    train_index: np.ndarray,
    channels: list[str],
    horizon: int = 1,
    y: np.ndarray | None = None,
) -> WindowScaler:
    """Statistics over the series rows that the training windows cover, each row counted once
    (overlapping windows would otherwise weigh the middle of the period more)."""
    train_index = np.asarray(train_index, dtype=np.int64)
    if train_index.size == 0:
        raise DataError("no training windows to fit the scaler on")
    n, window, width = x.shape
    if width != len(channels):
        raise DataError(f"windows have {width} channels but {len(channels)} are named")
    series = np.empty((n + window - 1, width), dtype=np.float64)
    covered = np.zeros(n + window - 1, dtype=bool)
    steps = np.arange(window)
    for start in range(0, train_index.size, FIT_BLOCK_WINDOWS):
        block = train_index[start : start + FIT_BLOCK_WINDOWS]
        rows = (block[:, None] + steps).reshape(-1)
        series[rows] = x[block].reshape(-1, width)
        covered[rows] = True
    values = series[covered]
    std = values.std(axis=0)
    # A constant channel would divide by zero; leave it centred and unscaled instead.
    std = np.where(std > 1e-12, std, 1.0)
    change_scale = 1.0
    if y is not None:
        last = x[train_index, -1, TARGET_CHANNEL : TARGET_CHANNEL + 1]
        spread = float(np.std(y[train_index] - last))
        change_scale = spread if spread > 1e-12 else 1.0
    return WindowScaler(
        channels=list(channels),
        window=int(window),
        horizon=int(horizon),
        mean=[float(v) for v in values.mean(axis=0)],
        std=[float(v) for v in std],
        change_scale=change_scale,
    )
