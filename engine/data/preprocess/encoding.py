"""The fitted table preprocessor: each feature's rules (`NumericFeature`, `CategoricalFeature`),
the target's encoding, and `Preprocessor`, which replays them on raw rows.

Missing, unseen and out-of-range values at predict time are handled by the fitted rules: a
missing value takes its fill, an outlier is clipped to the bounds, an unseen category takes
code 0 (or an all-zero or shared one-hot slot). The state is plain JSON
(`Preprocessor.to_dict`, version 2; version 1 still loads), saved as `preprocess.json` beside
the weights, so a model folder alone turns raw rows into the tensor the network was trained on.

Nothing here fits (that is `fit`): replaying a model's preprocessing needs only this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

STATE_VERSION = 2


@dataclass
class NumericFeature:
    name: str
    fill: float  # what a missing value becomes
    offset: float  # encoded = (value - offset) / scale: mean/std, min/range, median/IQR, 0/1
    scale: float
    kind: str = "numeric"
    # A boolean column is trained as 0/1; at predict time it takes true/false as well.
    boolean: bool = False
    # Outlier bounds from the training rows: every value is clipped into them.
    lower: float | None = None
    upper: float | None = None
    # Inner bin edges: the value is replaced by its bin (below the first edge: bin 0).
    edges: list[float] | None = None
    bin_encode: str = "onehot"
    indicator: bool = False  # a 0/1 column after the value: it was missing

    @property
    def width(self) -> int:
        if self.edges is not None and self.bin_encode == "onehot":
            return len(self.edges) + 1 + self.indicator
        return 1 + self.indicator


@dataclass
class CategoricalFeature:
    name: str
    categories: list[str]
    kind: str = "categorical"
    encoding: str = "onehot"  # "onehot" | "ordinal" | "embedding"
    # One-hot: an unseen category is an all-zero row ("zero") or a last shared slot ("other").
    # Ordinal and embedding codes are 1..n for the categories and 0 for unseen or missing.
    unseen: str = "zero"
    fill: str | None = None  # what a missing value becomes; None: it counts as unseen
    indicator: bool = False
    embedding_dim: int = 0

    @property
    def width(self) -> int:
        if self.encoding == "onehot":
            return len(self.categories) + (self.unseen == "other") + self.indicator
        return 1 + self.indicator


Feature = NumericFeature | CategoricalFeature


@dataclass
class EncodingPlan:
    """Where each feature's encoding goes in the model input, with the numeric features'
    fitted rules as arrays, so all numbers are encoded in a few vectorised steps."""

    numeric_names: list[str]
    fills: np.ndarray  # per numeric feature
    lowers: np.ndarray  # -inf where a feature has no bounds
    uppers: np.ndarray
    scaled: np.ndarray  # the numeric features that are scaled (not binned), by position
    offsets: np.ndarray  # theirs
    scales: np.ndarray
    scaled_at: np.ndarray  # their input columns
    binned: list[tuple[int, NumericFeature, int]]  # (numeric position, feature, first column)
    indicators: list[tuple[int, int]]  # (numeric position, column of its missing flag)
    categorical: list[tuple[CategoricalFeature, int]]  # (feature, first column)
    width: int  # the model input's columns

    @property
    def all_scaled(self) -> bool:
        return len(self.scaled) == len(self.numeric_names)

    @classmethod
    def of(cls, features: list[Feature]) -> EncodingPlan:
        numeric: list[NumericFeature] = []
        scaled, scaled_at, binned, indicators, categorical = [], [], [], [], []
        at = 0
        for feature in features:
            if isinstance(feature, CategoricalFeature):
                categorical.append((feature, at))
            else:
                j = len(numeric)
                numeric.append(feature)
                if feature.edges is None:
                    scaled.append(j)
                    scaled_at.append(at)
                else:
                    binned.append((j, feature, at))
                if feature.indicator:
                    indicators.append((j, at + feature.width - 1))
            at += feature.width

        def rule(values: list[float | None], default: float) -> np.ndarray:
            return np.array([default if v is None else v for v in values], dtype=np.float64)

        return cls(
            numeric_names=[f.name for f in numeric],
            fills=rule([f.fill for f in numeric], 0.0),
            lowers=rule([f.lower for f in numeric], -np.inf),
            # Bounds come in pairs; without a lower one nothing is clipped.
            uppers=rule([f.upper if f.lower is not None else None for f in numeric], np.inf),
            scaled=np.array(scaled, dtype=np.intp),
            offsets=rule([numeric[j].offset for j in scaled], 0.0),
            scales=rule([numeric[j].scale for j in scaled], 1.0),
            scaled_at=np.array(scaled_at, dtype=np.intp),
            binned=binned,
            indicators=indicators,
            categorical=categorical,
            width=at,
        )


def _row_count(table: pa.Table | Mapping[str, Any], features: list[Feature]) -> int:
    if isinstance(table, pa.Table):
        return table.num_rows
    return len(table[features[0].name]) if features else 0


@dataclass
class TargetEncoding:
    name: str
    kind: str  # "classes" | "numeric"
    classes: list[Any] = field(default_factory=list)
    mean: float = 0.0
    scale: float = 1.0


@dataclass
class Preprocessor:
    task: str
    features: list[Feature]
    target: TargetEncoding
    # Feature columns that selection left out, and why ("constant", "variance", "top_k").
    dropped_columns: dict[str, str] = field(default_factory=dict)

    @property
    def input_dim(self) -> int:
        return self.plan.width

    @property
    def output_dim(self) -> int:
        return len(self.target.classes) if self.target.kind == "classes" else 1

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def embedded_columns(self) -> list[tuple[int, int, int]]:
        """(input position, cardinality, dim) of each column encoded as embedding codes."""
        found, position = [], 0
        for feature in self.features:
            if isinstance(feature, CategoricalFeature) and feature.encoding == "embedding":
                found.append((position, len(feature.categories) + 1, feature.embedding_dim))
            position += feature.width
        return found

    def transform(self, table: pa.Table | Mapping[str, np.ndarray | pa.Array]) -> np.ndarray:
        """Raw columns (a table, or columns by name: numbers may be float64 arrays with NaN for
        missing) -> float32 matrix [rows, input_dim]; missing, unseen and out-of-range values
        are handled by the fitted rules."""
        names = self.plan.numeric_names
        if names:
            numbers = np.column_stack([as_float(table[name]) for name in names])
        else:
            numbers = np.empty((_row_count(table, self.features), 0))
        return self.encode(numbers, table)

    def encode(
        self, numbers: np.ndarray, columns: Mapping[str, pa.Array | pa.ChunkedArray]
    ) -> np.ndarray:
        """The float32 model input from the numeric features' raw values (float64
        [rows, numeric features] in `plan.numeric_names` order, NaN for missing; overwritten)
        and the categorical columns by name. Numbers are imputed, clipped and scaled for all
        columns at once: done column by column, a predict batch spends most of its time in
        per-call overhead."""
        plan = self.plan
        out = np.empty((len(numbers), plan.width), dtype=np.float32)
        missing = np.isnan(numbers)
        np.copyto(numbers, plan.fills, where=missing)
        # np.clip, as its two ufuncs: np.clip's own checks cost a one-row predict more than both.
        np.maximum(numbers, plan.lowers, out=numbers)
        np.minimum(numbers, plan.uppers, out=numbers)
        for j, feature, at in plan.binned:
            out[:, at : at + feature.width - feature.indicator] = _bin_block(feature, numbers[:, j])
        for j, at in plan.indicators:
            out[:, at] = missing[:, j]
        scaled = numbers if plan.all_scaled else numbers[:, plan.scaled]
        scaled -= plan.offsets
        scaled /= plan.scales
        out[:, plan.scaled_at] = scaled
        for feature, at in plan.categorical:
            out[:, at : at + feature.width] = _categorical_block(feature, columns[feature.name])
        return out

    @cached_property
    def plan(self) -> EncodingPlan:
        return EncodingPlan.of(self.features)

    def encode_target(self, column: pa.ChunkedArray | pa.Array) -> np.ndarray:
        if self.target.kind == "classes":
            index = pc.index_in(column, value_set=pa.array(self.target.classes))
            return index.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
        values = as_float(column)
        return ((values - self.target.mean) / self.target.scale).astype(np.float32)

    def decode_regression(self, values: np.ndarray) -> np.ndarray:
        return values * self.target.scale + self.target.mean

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "task": self.task,
            "features": [asdict(f) for f in self.features],
            "dropped_columns": dict(self.dropped_columns),
            "target": asdict(self.target),
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> Preprocessor:
        version = state.get("version", 1)
        if version > STATE_VERSION:
            raise ValueError(f"preprocess state version {version} is newer than this engine")
        features: list[Feature] = []
        for item in state["features"]:
            item = dict(item)
            kind = item.pop("kind")
            if kind == "numeric":
                if version == 1:  # version 1 only standardised: its shift was the mean
                    item["offset"] = item.pop("mean")
                features.append(NumericFeature(**item))
            else:
                features.append(CategoricalFeature(**item))
        return cls(
            task=state["task"],
            features=features,
            target=TargetEncoding(**state["target"]),
            dropped_columns=dict(state.get("dropped_columns", {})),
        )


def as_float(column: pa.ChunkedArray | pa.Array | np.ndarray) -> np.ndarray:
    """A column as float64, NaN for missing; datetimes as their integer ticks."""
    if isinstance(column, np.ndarray):
        return column
    if pa.types.is_temporal(column.type):
        column = column.cast(pa.int64())
    return column.cast(pa.float64()).to_numpy(zero_copy_only=False)


def category_codes(feature: CategoricalFeature, column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """1..n for the fitted categories in order, 0 for unseen (and missing without a fill)."""
    strings = column.cast(pa.string())
    if feature.fill is not None:
        strings = pc.fill_null(strings, feature.fill)
    index = pc.index_in(strings, value_set=pa.array(feature.categories, pa.string()))
    return index.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64) + 1


def _bin_block(feature: NumericFeature, values: np.ndarray) -> np.ndarray:
    # Out-of-range values fall in the first or last bin.
    bins = np.searchsorted(np.asarray(feature.edges), values, side="right")
    if feature.bin_encode == "onehot":
        return _one_hot(bins, len(feature.edges) + 1)
    return bins.reshape(-1, 1).astype(np.float64)


def _categorical_block(
    feature: CategoricalFeature, column: pa.ChunkedArray | pa.Array
) -> np.ndarray:
    codes = category_codes(feature, column)
    if feature.encoding != "onehot":
        block = codes.reshape(-1, 1).astype(np.float64)
    elif feature.unseen == "other":
        slots = np.where(codes > 0, codes - 1, len(feature.categories))
        block = _one_hot(slots, len(feature.categories) + 1)
    else:
        block = _one_hot(codes - 1, len(feature.categories))
    if feature.indicator:
        missing = pc.is_null(column).to_numpy(zero_copy_only=False).astype(np.float32)
        block = np.concatenate([block, missing.reshape(-1, 1)], axis=1)
    return block


def _one_hot(slots: np.ndarray, width: int) -> np.ndarray:
    """Rows with a slot in [0, width) get a 1 there; a negative slot is an all-zero row."""
    onehot = np.zeros((len(slots), width), dtype=np.float32)
    known = slots >= 0
    onehot[np.nonzero(known)[0], slots[known]] = 1.0
    return onehot
