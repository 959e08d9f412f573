"""Feature and target encoding, fitted on the training split and replayed at predict time.

What `data.preprocess` asks for, column by column: imputation (with an optional indicator
column), outlier bounds, scaling or binning for numbers; one-hot, ordinal or embedding codes for
categories; then feature selection. Settings come from the type's defaults (`numeric`,
`categorical`) overridden field by field by `columns`; a field that cannot apply to a column is
refused (`SpecMismatch` naming it) before anything is fitted.

Rows are removed only from the training split (`clean_training_rows`): duplicates, rows missing
a value whose column says impute 'drop', outliers whose column says action 'drop'. At predict
time there is no row to drop, so the same fitted rule stands in: a missing value takes the
training median (numbers) or most frequent category, an outlier is clipped to the bounds.

The fitted state is plain JSON (`Preprocessor.to_dict`, version 2; version 1 still loads),
saved as `preprocess.json` beside the weights, so a model folder alone turns raw rows into the
tensor the network was trained on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.data.ingest.table import logical_type
from engine.errors import DataError, SpecMismatch
from engine.spec import Spec
from engine.spec.data import BinningConfig, ColumnPreprocess, OutlierConfig, PreprocessConfig

STATE_VERSION = 2
MAX_CATEGORIES = 100
# Embeddings exist for high cardinality: capping them at the one-hot default defeats them.
MAX_EMBEDDED_CATEGORIES = 10_000
MAX_EMBEDDING_DIM = 50
# Mutual information is a k-nearest-neighbour estimate: a sample this size ranks columns as
# well as the whole table, at a bounded cost in the dry run.
MUTUAL_INFORMATION_ROWS = 5_000

# Which fields of `ColumnPreprocess` apply to which column type.
NUMERIC_ONLY = ("scale", "outliers", "binning")
CATEGORICAL_ONLY = ("encoding", "unseen", "max_categories", "embedding_dim")
SETTINGS_ROOT = "data.preprocess"


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
            numbers = np.column_stack([_as_float(table[name]) for name in names])
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
        values = _as_float(column)
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


# --- which columns, with which settings ---------------------------------------------------------


def resolve_features(spec: Spec, schema: pa.Schema) -> list[str]:
    """The input columns a spec names, checked against the dataset's columns."""
    names = schema.names
    if spec.target is not None and spec.target not in names:
        raise SpecMismatch("target", f"{spec.target!r} is not a column of the dataset")
    if spec.features is None:
        return [n for n in names if n != spec.target]
    for i, name in enumerate(spec.features):
        if name not in names:
            raise SpecMismatch(f"features[{i}]", f"{name!r} is not a column of the dataset")
    return list(spec.features)


def column_kind(dtype: pa.DataType) -> str:
    """Numbers, booleans and datetimes are encoded as numbers ("numeric"); the rest are
    "categorical"."""
    return "categorical" if logical_type(dtype) == "categorical" else "numeric"


def column_settings(
    config: PreprocessConfig, name: str, kind: str
) -> tuple[ColumnPreprocess, dict[str, str]]:
    """A column's settings: its type's defaults overridden field by field by `columns[name]`,
    and for each field the spec path it came from (to name it in an error)."""
    base = config.numeric if kind == "numeric" else config.categorical
    own = config.columns.get(name)
    paths = {f: f"{SETTINGS_ROOT}.{kind}.{f}" for f in ColumnPreprocess.model_fields}
    if own is None:
        return base, paths
    overrides = {f: getattr(own, f) for f in own.model_fields_set}
    paths.update({f: f"{SETTINGS_ROOT}.columns.{name}.{f}" for f in overrides})
    return base.model_copy(update=overrides), paths


def drop_missing_target(table: pa.Table, target: str | None) -> pa.Table:
    if target is None:
        return table
    column = table.column(target)
    if column.null_count == 0:
        return table
    return table.filter(pc.is_valid(column))


# --- training rows ------------------------------------------------------------------------------


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
            values = _as_float(train.column(name))
            lower, upper = _outlier_bounds(values[~np.isnan(values)], settings[name].outliers)
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
        return ~np.isnan(_as_float(column))
    return pc.is_valid(column).to_numpy(zero_copy_only=False)


# --- fitting ------------------------------------------------------------------------------------


def fit_preprocessor(spec: Spec, train: pa.Table) -> Preprocessor:
    """Fit encoders on the training rows only, so no statistic leaks from held-out rows."""
    check_spec_against_schema(spec, train.schema)
    config = spec.data.preprocess
    features: list[Feature] = []
    for name in resolve_features(spec, train.schema):
        column = train.column(name)
        kind = column_kind(column.type)
        settings = column_settings(config, name, kind)[0]
        if kind == "numeric":
            features.append(_fit_numeric(name, column, settings))
        else:
            features.append(_fit_categorical(name, column, settings))
    target = _fit_target(spec, train.column(spec.target) if spec.target is not None else None)
    features, dropped = _select_features(spec, train, features, target)
    if not any(f.width for f in features):
        raise DataError(
            "no usable feature columns: every feature is empty or constant in the training rows"
        )
    return Preprocessor(spec.task, features, target, dropped)


def _fit_numeric(name: str, column: pa.ChunkedArray, settings: ColumnPreprocess) -> NumericFeature:
    values = _as_float(column)
    present = values[~np.isnan(values)]
    feature = NumericFeature(
        name,
        fill=0.0,
        offset=0.0,
        scale=1.0,
        boolean=pa.types.is_boolean(column.type),
        indicator=bool(settings.missing_indicator),
    )
    if settings.outliers is not None and present.size:
        feature.lower, feature.upper = _outlier_bounds(present, settings.outliers)
        present = np.clip(present, feature.lower, feature.upper)
    feature.fill = _numeric_fill(present, settings)
    if settings.binning is not None:
        feature.edges = _bin_edges(present, settings.binning)
        feature.bin_encode = settings.binning.encode
    elif present.size:
        feature.offset, feature.scale = _scaling(present, settings.scale or "standard")
    return feature


def _numeric_fill(present: np.ndarray, settings: ColumnPreprocess) -> float:
    strategy = settings.impute or "median"
    if strategy == "constant":
        return float(settings.fill_value)  # type: ignore[arg-type]  # checked numeric
    if present.size == 0:
        return 0.0
    if strategy == "mean":
        return float(present.mean())
    if strategy == "most_frequent":
        values, counts = np.unique(present, return_counts=True)
        return float(values[counts.argmax()])  # ties: the smallest value
    # "median", and "drop": at predict time there is no row to drop, the median stands in.
    return float(np.median(present))


def _outlier_bounds(
    present: np.ndarray, config: OutlierConfig
) -> tuple[float | None, float | None]:
    if present.size == 0:
        return None, None
    if config.method == "iqr":
        q1, q3 = np.percentile(present, [25, 75])
        reach = (config.threshold or 1.5) * (q3 - q1)
        return float(q1 - reach), float(q3 + reach)
    reach = (config.threshold or 3.0) * float(present.std())
    return float(present.mean() - reach), float(present.mean() + reach)


def _scaling(present: np.ndarray, method: str) -> tuple[float, float]:
    """(offset, scale); a spread of zero scales by 1 so a constant column stays finite."""
    if method == "none":
        return 0.0, 1.0
    if method == "minmax":
        offset, spread = float(present.min()), float(present.max() - present.min())
    elif method == "robust":
        q1, median, q3 = np.percentile(present, [25, 50, 75])
        offset, spread = float(median), float(q3 - q1)
    else:
        offset, spread = float(present.mean()), float(present.std())
    return offset, spread if spread > 1e-12 else 1.0


def _bin_edges(present: np.ndarray, config: BinningConfig) -> list[float]:
    if config.method == "edges":
        return [float(e) for e in config.edges or []]
    if present.size == 0:
        return []
    if config.method == "quantile":
        edges = np.quantile(present, np.linspace(0.0, 1.0, config.bins + 1)[1:-1])
    else:
        edges = np.linspace(present.min(), present.max(), config.bins + 1)[1:-1]
    # Ties (many equal values, a constant column) would make empty bins: keep distinct edges
    # above the smallest training value.
    return [float(e) for e in np.unique(edges[edges > present.min()])]


def _fit_categorical(
    name: str, column: pa.ChunkedArray, settings: ColumnPreprocess
) -> CategoricalFeature:
    strings = column.cast(pa.string())
    encoding = settings.encoding or "onehot"
    fill = None
    if settings.impute == "constant":
        fill = _as_category(settings.fill_value)
    elif settings.impute in ("most_frequent", "drop"):
        # "drop" removed the training rows; at predict time the most frequent stands in.
        fill = next(iter(_ranked_values(strings)), None)
    if fill is not None:
        strings = pc.fill_null(strings, fill)
    limit = settings.max_categories or (
        MAX_EMBEDDED_CATEGORIES if encoding == "embedding" else MAX_CATEGORIES
    )
    categories = _ranked_values(strings)[:limit]
    if encoding == "ordinal":
        categories.sort()  # label codes in a stable, readable order
    default_dim = max(1, min(MAX_EMBEDDING_DIM, (len(categories) + 1) // 2))
    return CategoricalFeature(
        name,
        categories,
        encoding=encoding,
        unseen=settings.unseen or "zero",
        fill=fill,
        indicator=bool(settings.missing_indicator),
        embedding_dim=(settings.embedding_dim or default_dim) if encoding == "embedding" else 0,
    )


def _ranked_values(strings: pa.ChunkedArray) -> list[str]:
    """Distinct present values, most frequent first (ties by value)."""
    counts = pc.value_counts(strings.drop_null())
    pairs = zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True)
    return [v for v, _ in sorted(pairs, key=lambda vc: (-vc[1], vc[0]))]


def _as_category(value: float | str | None) -> str:
    # A whole number names the category its column's integers cast to ("3", not "3.0").
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _fit_target(spec: Spec, column: pa.ChunkedArray | None) -> TargetEncoding:
    if spec.task == "reconstruction" or column is None:
        return TargetEncoding("", "none")
    if spec.task == "classification":
        classes = sorted(pc.unique(column).drop_null().to_pylist(), key=lambda v: (str(type(v)), v))
        if len(classes) < 2:
            raise DataError(f"target {spec.target!r} has fewer than 2 classes in the training rows")
        return TargetEncoding(spec.target, "classes", classes=classes)
    values = _as_float(column)
    std = float(values.std())
    return TargetEncoding(spec.target, "numeric", mean=float(values.mean()), scale=std or 1.0)


# --- feature selection --------------------------------------------------------------------------


def _select_features(
    spec: Spec, train: pa.Table, features: list[Feature], target: TargetEncoding
) -> tuple[list[Feature], dict[str, str]]:
    selection = spec.data.preprocess.selection
    dropped: dict[str, str] = {}
    for feature in features:
        column = train.column(feature.name)
        if selection.drop_constant and pc.count_distinct(column, mode="all").as_py() <= 1:
            dropped[feature.name] = "constant"
        elif (
            selection.variance_threshold is not None
            and isinstance(feature, NumericFeature)
            and _variance(column) <= selection.variance_threshold
        ):
            dropped[feature.name] = "variance"
    kept = [f for f in features if f.name not in dropped]
    if selection.top_k is not None and len(kept) > selection.top_k:
        scores = _mutual_information(spec, train, kept, target)
        ranked = sorted(range(len(kept)), key=lambda i: (-scores[i], i))
        chosen = set(ranked[: selection.top_k])
        dropped.update({f.name: "top_k" for i, f in enumerate(kept) if i not in chosen})
        kept = [f for i, f in enumerate(kept) if i in chosen]
    return kept, dropped


def _variance(column: pa.ChunkedArray) -> float:
    values = _as_float(column)
    present = values[~np.isnan(values)]
    return float(present.var()) if present.size else 0.0


def _mutual_information(
    spec: Spec, train: pa.Table, features: list[Feature], target: TargetEncoding
) -> list[float]:
    """Each feature's mutual information with the target, on a bounded sample of the training
    rows: numbers after imputation and clipping, categories as their codes (discrete)."""
    # Imported here: only top_k needs scikit-learn, and the engine's import stays light.
    from sklearn.feature_selection import mutual_info_classif, mutual_info_regression

    if train.num_rows > MUTUAL_INFORMATION_ROWS:
        rng = np.random.default_rng(spec.seed)
        rows = np.sort(rng.choice(train.num_rows, MUTUAL_INFORMATION_ROWS, replace=False))
        train = train.take(pa.array(rows))
    columns, discrete = [], []
    for feature in features:
        column = train.column(feature.name)
        if isinstance(feature, NumericFeature):
            columns.append(_numeric_values(feature, column))
            discrete.append(False)
        else:
            columns.append(_category_codes(feature, column).astype(np.float64))
            discrete.append(True)
    x = np.stack(columns, axis=1)
    y_column = train.column(target.name)
    if target.kind == "classes":
        y = pc.index_in(y_column, value_set=pa.array(target.classes))
        y = y.fill_null(-1).to_numpy(zero_copy_only=False)
        scores = mutual_info_classif(
            x, y, discrete_features=np.array(discrete), random_state=spec.seed
        )
    else:
        y = _as_float(y_column)
        known = ~np.isnan(y)
        scores = mutual_info_regression(
            x[known], y[known], discrete_features=np.array(discrete), random_state=spec.seed
        )
    return [float(s) for s in scores]


# --- encoding -----------------------------------------------------------------------------------


def pat_is_float(dtype: pa.DataType) -> bool:
    return pa.types.is_floating(dtype) or pa.types.is_decimal(dtype)


def _as_float(column: pa.ChunkedArray | pa.Array | np.ndarray) -> np.ndarray:
    if isinstance(column, np.ndarray):
        return column
    if pa.types.is_temporal(column.type):
        column = column.cast(pa.int64())
    return column.cast(pa.float64()).to_numpy(zero_copy_only=False)


def _numeric_values(
    feature: NumericFeature, column: pa.ChunkedArray | pa.Array | np.ndarray
) -> np.ndarray:
    """Imputed and clipped, before scaling or binning."""
    values = _as_float(column)
    values = np.where(np.isnan(values), feature.fill, values)
    if feature.lower is not None:
        values = np.clip(values, feature.lower, feature.upper)
    return values


def _category_codes(feature: CategoricalFeature, column: pa.ChunkedArray | pa.Array) -> np.ndarray:
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
    codes = _category_codes(feature, column)
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


# --- checks before training ---------------------------------------------------------------------


def check_spec_against_schema(spec: Spec, schema: pa.Schema) -> None:
    """What can be checked before training: the columns exist and suit the task, and every
    preprocess setting applies to the columns it reaches."""
    features = resolve_features(spec, schema)
    if spec.task == "forecasting":
        for name in [spec.target, *features]:
            if logical_type(schema.field(name).type) != "numeric":
                raise SpecMismatch(
                    "features" if name != spec.target else "target",
                    f"forecasting reads numeric columns; {name!r} is not numeric",
                )
    check_preprocess(spec, schema, features)
    if spec.target is None:
        return
    target_type = schema.field(spec.target).type
    if pa.types.is_null(target_type):
        raise SpecMismatch("target", f"column {spec.target!r} has no values")
    if spec.task == "classification" and pat_is_float(target_type):
        raise SpecMismatch(
            "task",
            f"target {spec.target!r} holds real numbers; use task 'regression' or give class "
            "labels",
        )
    if spec.task == "regression" and logical_type(target_type) not in ("numeric", "boolean"):
        raise SpecMismatch(
            "task", f"target {spec.target!r} is not numeric; regression needs a numeric target"
        )


def check_preprocess(spec: Spec, schema: pa.Schema, features: list[str]) -> None:
    """Refuse, naming the field, any `data.preprocess` setting that cannot apply."""
    config = spec.data.preprocess
    if spec.task == "forecasting":
        require_default_preprocess(spec, "forecasting windows")
        return
    for name in config.columns:
        if name not in features:
            what = "the target" if name == spec.target else "not a feature column"
            raise SpecMismatch(f"{SETTINGS_ROOT}.columns.{name}", f"{name!r} is {what}")
    for kind in ("numeric", "categorical"):
        own = getattr(config, kind)
        _check_settings(own, own, kind, f"{SETTINGS_ROOT}.{kind}", None)
    for name, own in config.columns.items():
        kind = column_kind(schema.field(name).type)
        merged = column_settings(config, name, kind)[0]
        _check_settings(own, merged, kind, f"{SETTINGS_ROOT}.columns.{name}", name)
    if spec.target is None and config.selection.top_k is not None:
        raise SpecMismatch(
            f"{SETTINGS_ROOT}.selection.top_k",
            f"ranks columns by mutual information with the target; task {spec.task} has none",
        )
    if spec.task == "reconstruction":
        for name in features:
            kind = column_kind(schema.field(name).type)
            settings, paths = column_settings(config, name, kind)
            if kind == "categorical" and settings.encoding == "embedding":
                raise SpecMismatch(
                    paths["encoding"],
                    "reconstruction rebuilds the encoded input; an embedding code is not a "
                    "value to rebuild (use onehot or ordinal)",
                )


def require_default_preprocess(spec: Spec, what: str) -> None:
    """Data that is not a table of feature columns (`what`: "forecasting windows", "arrays")
    has its own scaling rule; table settings there would be silently ignored, so refuse them."""
    if spec.data.preprocess != PreprocessConfig():
        raise SpecMismatch(
            SETTINGS_ROOT, f"applies to table feature columns; {what} are scaled by their own rule"
        )


def _check_settings(
    own: ColumnPreprocess, effective: ColumnPreprocess, kind: str, path: str, column: str | None
) -> None:
    """Each field set in `own` (a type's defaults when `column` is None, else one column's
    overrides) must apply to a column of `kind` under its `effective` settings."""
    other = "categorical" if kind == "numeric" else "numeric"
    subject = f"{column!r} is {kind}" if column else f"set it under {SETTINGS_ROOT}.{other}"
    for name in sorted(own.model_fields_set):
        value = getattr(own, name)
        if value is None:
            continue
        where = f"{path}.{name}"
        if name in (CATEGORICAL_ONLY if kind == "numeric" else NUMERIC_ONLY):
            raise SpecMismatch(where, f"applies to {other} columns; {subject}")
        if kind == "categorical" and name == "impute" and value in ("mean", "median"):
            raise SpecMismatch(
                where, f"{value} needs numbers; categories take most_frequent, constant or drop"
            )
        if kind == "numeric" and name == "fill_value" and isinstance(value, str):
            raise SpecMismatch(where, "numeric columns are filled with a number")
        if name == "unseen" and (effective.encoding or "onehot") != "onehot":
            raise SpecMismatch(
                where,
                "applies to onehot encoding; ordinal and embedding codes give unseen "
                "categories code 0",
            )
        # On the type's defaults it is the size for whichever columns choose embedding.
        if name == "embedding_dim" and column and effective.encoding != "embedding":
            raise SpecMismatch(where, "applies to encoding 'embedding'")
        if name == "scale" and effective.binning is not None:
            raise SpecMismatch(
                where, "binning replaces the value by its bin; scaling does not apply"
            )
