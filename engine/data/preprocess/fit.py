"""The table preprocessor fitted on the training rows only, so no statistic leaks from
held-out rows: each feature's fill, outlier bounds, and scaling or bins (numbers) or categories
and their codes; the target's classes or scale; then feature selection (constant columns, low
variance, the top k by mutual information with the target).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.data.preprocess.checks import check_spec_against_schema
from engine.data.preprocess.cleaning import outlier_bounds
from engine.data.preprocess.columns import column_kind, column_settings, resolve_features
from engine.data.preprocess.encoding import (
    CategoricalFeature,
    Feature,
    NumericFeature,
    Preprocessor,
    TargetEncoding,
    as_float,
    category_codes,
)
from engine.errors import DataError
from engine.spec import Spec
from engine.spec.data import BinningConfig, ColumnPreprocess

MAX_CATEGORIES = 100
# Embeddings exist for high cardinality: capping them at the one-hot default defeats them.
MAX_EMBEDDED_CATEGORIES = 10_000
MAX_EMBEDDING_DIM = 50
# Mutual information is a k-nearest-neighbour estimate: a sample this size ranks columns as
# well as the whole table, at a bounded cost in the dry run.
MUTUAL_INFORMATION_ROWS = 5_000


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
    values = as_float(column)
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
        feature.lower, feature.upper = outlier_bounds(present, settings.outliers)
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
    values = as_float(column)
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
    values = as_float(column)
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
            columns.append(category_codes(feature, column).astype(np.float64))
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
        y = as_float(y_column)
        known = ~np.isnan(y)
        scores = mutual_info_regression(
            x[known], y[known], discrete_features=np.array(discrete), random_state=spec.seed
        )
    return [float(s) for s in scores]


def _numeric_values(
    feature: NumericFeature, column: pa.ChunkedArray | pa.Array | np.ndarray
) -> np.ndarray:
    """Imputed and clipped, before scaling or binning."""
    values = as_float(column)
    values = np.where(np.isnan(values), feature.fill, values)
    if feature.lower is not None:
        values = np.clip(values, feature.lower, feature.upper)
    return values
