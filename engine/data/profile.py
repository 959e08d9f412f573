"""Profile a Parquet table: per-column statistics, duplicates, warnings; and a target's view.

The table profile reads one column at a time, so memory is about one column plus one 64-bit
hash per row (for duplicate rows). The target profile works on a bounded random sample.
Everything returned is plain dataclasses of JSON-ready values.
"""

from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pyarrow.types as pat

from engine.errors import DataError

PROFILE_VERSION = 1
HISTOGRAM_BINS = 20
TOP_VALUES = 20
QUANTILES = {"p5": 0.05, "p25": 0.25, "p50": 0.5, "p75": 0.75, "p95": 0.95}
# kNN mutual information costs about 0.1 s per feature per 10k rows.
SAMPLE_ROWS = 20_000
# Text: a string column whose values are mostly unique and long (free text, not categories).
TEXT_UNIQUE_RATIO = 0.5
TEXT_MEAN_LENGTH = 20
MANY_MISSING_RATIO = 0.5
HIGH_CARDINALITY = 1000
HIGH_CARDINALITY_RATIO = 0.5
LEAKAGE_CORRELATION = 0.99
LEAKAGE_MUTUAL_INFORMATION = 0.95
# A numeric target with at most this many distinct integer values is a set of classes.
MAX_CLASSES = 20

ColumnType = Literal["numeric", "categorical", "boolean", "text", "datetime"]


@dataclass
class Histogram:
    edges: list[float]
    counts: list[int]


@dataclass
class NumericStats:
    min: float
    max: float
    mean: float
    std: float  # sample standard deviation (ddof=1), as pandas reports it
    quantiles: dict[str, float]
    histogram: Histogram


@dataclass
class DatetimeStats:
    min: str
    max: str


@dataclass
class ValueCount:
    value: str | int | float | bool
    count: int


@dataclass
class ColumnProfile:
    name: str
    type: ColumnType
    dtype: str
    missing: int
    unique: int
    numeric: NumericStats | None = None
    datetime: DatetimeStats | None = None
    top_values: list[ValueCount] | None = None


@dataclass
class ProfileWarning:
    column: str | None
    code: str  # constant | high_cardinality | many_missing | leakage_suspect
    message: str


@dataclass
class TableProfile:
    rows: int
    duplicate_rows: int
    columns: list[ColumnProfile]
    warnings: list[ProfileWarning] = field(default_factory=list)
    version: int = PROFILE_VERSION


@dataclass
class FeatureScore:
    column: str
    # pearson: correlation with a numeric target; mutual_information: normalised to [0, 1]
    method: Literal["pearson", "mutual_information"]
    score: float | None


@dataclass
class TargetProfile:
    column: str
    task: Literal["classification", "regression"]
    sample_rows: int
    classes: list[ValueCount] | None = None
    distribution: NumericStats | None = None
    features: list[FeatureScore] = field(default_factory=list)
    warnings: list[ProfileWarning] = field(default_factory=list)
    version: int = PROFILE_VERSION


# --- table ------------------------------------------------------------------------------------


def profile_table(source: BinaryIO | str, threads: int = 2) -> TableProfile:
    """Profile the Parquet file `source`, one column at a time (`threads` at once)."""
    schema = pq.read_schema(source)
    if hasattr(source, "seek"):
        source.seek(0)
    text = [f.name for f in schema if pat.is_string(f.type) or pat.is_large_string(f.type)]
    # Text columns come back dictionary-encoded, as they are stored: no string is built.
    parquet = pq.ParquetFile(source, read_dictionary=text)
    rows = parquet.metadata.num_rows
    row_hash = np.zeros(rows, dtype=np.uint64)
    lock = threading.Lock()

    def profile(index: int) -> ColumnProfile:
        f = schema.field(index)
        with lock:
            column = parquet.read(columns=[f.name], use_threads=False).column(0)
        result, codes = _profile_column(f.name, column, rows)
        mixed = _mix(codes, index)
        with lock:
            # A sum: the order the columns finish in does not matter.
            np.add(row_hash, mixed, out=row_hash)
        return result

    with ThreadPoolExecutor(max_workers=threads) as pool:
        columns = list(pool.map(profile, range(len(schema))))
    duplicates = rows - _distinct_sorted(np.sort(row_hash)) if rows else 0
    warnings = [w for c in columns for w in _column_warnings(c, rows)]
    return TableProfile(rows=rows, duplicate_rows=duplicates, columns=columns, warnings=warnings)


def _profile_column(name: str, column: pa.ChunkedArray, rows: int) -> tuple[ColumnProfile, Any]:
    """The column's profile and one uint64 code per row (equal values, equal codes)."""
    dtype = column.type
    if pat.is_dictionary(dtype):
        return _profile_strings(name, column, rows)
    if pat.is_integer(dtype) or pat.is_floating(dtype) or pat.is_decimal(dtype):
        values = _as_float(column)
        finite = np.sort(values[np.isfinite(values)])
        unique = _distinct_sorted(finite)
        stats = _numeric_sorted(finite)
        profile = ColumnProfile(name, "numeric", str(dtype), rows - finite.size, unique, stats)
        # -0.0 and 0.0 are one value; every NaN and missing value is one code.
        codes = np.where(np.isnan(values), np.nan, values + 0.0).view(np.uint64)
        return profile, codes
    if pat.is_boolean(dtype):
        codes = pc.fill_null(pc.cast(column, pa.int8()), 2).to_numpy().astype(np.int64)
        counts = np.bincount(codes, minlength=3)[:2]
        tops = [ValueCount(bool(v), int(counts[v])) for v in np.argsort(-counts, kind="stable")]
        tops = [t for t in tops if t.count]
        profile = ColumnProfile(
            name, "boolean", str(dtype), column.null_count, len(tops), top_values=tops
        )
        return profile, codes.view(np.uint64)
    if pat.is_temporal(dtype):
        missing = column.null_count
        ints = pc.fill_null(_temporal_ints(column), -(2**63)).to_numpy()
        unique = _distinct_sorted(np.sort(ints[ints != -(2**63)])) if missing < rows else 0
        stats = None
        if missing < rows:
            low, high = pc.min_max(column).values()
            stats = DatetimeStats(_iso(low.as_py()), _iso(high.as_py()))
        profile = ColumnProfile(name, "datetime", str(dtype), missing, unique, datetime=stats)
        return profile, ints.view(np.uint64)
    if pat.is_string(dtype) or pat.is_large_string(dtype):
        return _profile_strings(name, pc.dictionary_encode(column), rows)
    if pat.is_null(dtype):
        # Every cell empty: nothing to describe beyond that; one code for every row.
        return ColumnProfile(name, "categorical", str(dtype), rows, 0), np.zeros(rows, np.uint64)
    raise DataError(f"column {name!r} has type {dtype}, which cannot be profiled")


def _profile_strings(
    name: str, column: pa.ChunkedArray, rows: int
) -> tuple[ColumnProfile, np.ndarray]:
    """A dictionary-encoded string column: counts per dictionary entry, no string compared."""
    column = column.unify_dictionaries()
    dictionary = column.chunk(0).dictionary if column.num_chunks else pa.array([], pa.string())
    codes = np.concatenate(
        [pc.fill_null(chunk.indices, -1).to_numpy().astype(np.int64) for chunk in column.chunks]
        or [np.empty(0, np.int64)]
    )
    present_codes = codes[codes >= 0]
    counts = np.bincount(present_codes, minlength=len(dictionary))
    present = int(present_codes.size)
    unique = int(np.count_nonzero(counts))
    is_text = False
    if present and unique / present > TEXT_UNIQUE_RATIO:
        lengths = pc.utf8_length(dictionary).to_numpy(zero_copy_only=False)
        is_text = float((lengths * counts).sum()) / present >= TEXT_MEAN_LENGTH
    dtype = str(column.type.value_type)
    profile = ColumnProfile(
        name, "text" if is_text else "categorical", dtype, rows - present, unique
    )
    if not is_text:
        order = np.lexsort((np.arange(counts.size), -counts))[:TOP_VALUES]
        values = dictionary.take(pa.array(order)).to_pylist()
        profile.top_values = [
            ValueCount(v, int(counts[i])) for v, i in zip(values, order, strict=True) if counts[i]
        ]
    return profile, codes.view(np.uint64)


def _distinct_sorted(values: np.ndarray) -> int:
    if values.size == 0:
        return 0
    return 1 + int(np.count_nonzero(values[1:] != values[:-1]))


def _numeric_sorted(values: np.ndarray) -> NumericStats | None:
    """Statistics of sorted finite values; quantiles interpolate linearly, as numpy's do."""
    n = values.size
    if n == 0:
        return None
    low, high = float(values[0]), float(values[-1])
    position = np.array(list(QUANTILES.values())) * (n - 1)
    below = np.floor(position).astype(np.int64)
    above = np.minimum(below + 1, n - 1)
    quantiles = values[below] + (values[above] - values[below]) * (position - below)
    edges = np.linspace(low, high, HISTOGRAM_BINS + 1) if high > low else np.array([low, high])
    if high > low:
        # Bins are [a, b) but the last, [a, b]: as numpy.histogram counts them.
        cuts = np.searchsorted(values, edges[1:-1], side="left")
        counts = np.diff(np.concatenate([[0], cuts, [n]]))
    else:
        counts = np.array([n])
    return NumericStats(
        min=low,
        max=high,
        mean=float(values.mean()),
        std=float(values.std(ddof=1)) if n > 1 else 0.0,
        quantiles={k: float(v) for k, v in zip(QUANTILES, quantiles, strict=True)},
        histogram=Histogram(edges=[float(e) for e in edges], counts=[int(c) for c in counts]),
    )


def _as_float(column: pa.ChunkedArray) -> np.ndarray:
    as_float = pc.cast(column, pa.float64(), safe=False)
    return pc.fill_null(as_float, math.nan).to_numpy()


def _top_values(column: pa.ChunkedArray, limit: int = TOP_VALUES) -> list[ValueCount]:
    counts = pc.value_counts(column.drop_null())
    if len(counts) == 0:
        return []
    order = pc.sort_indices(counts, sort_keys=[("counts", "descending"), ("values", "ascending")])
    top = counts.take(order[:limit])
    return [ValueCount(v["values"], v["counts"]) for v in top.to_pylist()]


def _iso(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _mix(codes: np.ndarray, index: int) -> np.ndarray:
    """One column's share of each row's hash: the code salted by the column's position, then
    multiply-xorshift-multiply (half of splitmix64's finaliser, in place: this runs on every
    cell of the table), so that rows hash alike only when every column's value is alike."""
    z = codes.astype(np.uint64, copy=True)
    z ^= np.uint64((index + 1) * 0x9E3779B97F4A7C15 % 2**64)
    z *= np.uint64(0xBF58476D1CE4E5B9)
    z ^= z >> np.uint64(31)
    z *= np.uint64(0x94D049BB133111EB)
    return z


def _column_warnings(column: ColumnProfile, rows: int) -> list[ProfileWarning]:
    warnings = []
    present = rows - column.missing
    if rows and column.missing > MANY_MISSING_RATIO * rows:
        share = column.missing / rows
        warnings.append(
            ProfileWarning(column.name, "many_missing", f"{share:.0%} of the values are missing")
        )
    if column.unique <= 1:
        what = "has no values" if column.unique == 0 else "has one value in every row"
        warnings.append(ProfileWarning(column.name, "constant", f"the column {what}"))
    if column.type == "categorical" and (
        column.unique > HIGH_CARDINALITY
        or (column.unique > 50 and column.unique > HIGH_CARDINALITY_RATIO * present)
    ):
        warnings.append(
            ProfileWarning(
                column.name,
                "high_cardinality",
                f"{column.unique:,} distinct values in {present:,} rows; one-hot encoding "
                "would be very wide (consider an embedding, or dropping an identifier)",
            )
        )
    return warnings


def table_profile_from_dict(stored: dict[str, Any]) -> TableProfile:
    """A TableProfile from its JSON form (`dataclasses.asdict` of one)."""
    columns = []
    for c in stored["columns"]:
        numeric = c.get("numeric")
        if numeric is not None:
            numeric = NumericStats(**{**numeric, "histogram": Histogram(**numeric["histogram"])})
        datetime = DatetimeStats(**c["datetime"]) if c.get("datetime") else None
        tops = c.get("top_values")
        if tops is not None:
            tops = [ValueCount(**t) for t in tops]
        columns.append(
            ColumnProfile(**{**c, "numeric": numeric, "datetime": datetime, "top_values": tops})
        )
    return TableProfile(
        rows=stored["rows"],
        duplicate_rows=stored["duplicate_rows"],
        columns=columns,
        warnings=[ProfileWarning(**w) for w in stored["warnings"]],
        version=stored["version"],
    )


# --- target -----------------------------------------------------------------------------------


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
        result.classes = _top_values(target_column, limit=max(TOP_VALUES, MAX_CLASSES))
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
            x = _as_float(_numeric_view(column))
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
    return np.empty(0, dtype=np.int64), _as_float(column)


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
        return _temporal_ints(column)
    return column


def _temporal_ints(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Dates and times as the integers they are stored as (days, units since the epoch)."""
    as_int = pa.int32() if column.type.bit_width == 32 else pa.int64()
    chunks = [pc.cast(chunk.view(as_int), pa.int64()) for chunk in column.chunks]
    return pa.chunked_array(chunks, type=pa.int64())


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
