"""Profile a Parquet table: per-column statistics, duplicates, warnings; and a target's view.

The table profile is begun on the table's pieces while an upload is converted and finished
from the stored file (`TableProfiler`), a few columns at a time, so memory is about a few
columns plus one 64-bit hash per row (for duplicate rows). The target profile works on a
bounded random sample.
Everything returned is plain dataclasses of JSON-ready values.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
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
# Rows a stored file is profiled in at a time (profile_table).
PROFILE_BATCH_ROWS = 1 << 16
# Columns read back from the file at a time, per thread: every read walks each row group, so
# reading a few together costs much less per column (memory: that many columns per thread).
COLUMNS_PER_READ = 2
# The row-hash code of a missing time.
_NO_TIME = -(2**63)

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


class TableProfiler:
    """A table's profile, begun on its pieces as they go by and finished from its Parquet file.

    `add` takes each piece in order (an upload's, while it is converted): it hashes each row's
    numeric, boolean and datetime values for the duplicate count and counts the booleans, so
    those are not read again for it. `finish` reads back from the stored file only what needs
    a whole column at once: numeric and datetime columns (sorted, for quantiles and distinct
    counts), and text, which the file holds dictionary-encoded: its counts and row codes come
    from the dictionary the Parquet writer built anyway, far cheaper than hashing every string
    again on the way. Memory: one 64-bit hash per row, then COLUMNS_PER_READ columns per
    thread.
    """

    def __init__(self, schema: pa.Schema | None = None) -> None:
        """`schema` is the table's; without it, the first piece's."""
        self.rows = 0
        self._columns = _columns_for(schema) if schema is not None else None
        self._row_hashes: list[np.ndarray] = []

    def add(self, table: pa.Table) -> None:
        """Take the next piece: the table's columns, or at least those hashed on the way."""
        if self._columns is None:
            self._columns = _columns_for(table.schema)
        row_hash = np.zeros(table.num_rows, dtype=np.uint64)
        for column in self._columns:
            if column.hashed_on_the_way:
                row_hash += column.add(table.column(column.name))
        self._row_hashes.append(row_hash)
        self.rows += table.num_rows

    def finish(self, source: BinaryIO | str, threads: int = 2) -> TableProfile:
        """The profile, reading what is left from `source`, the Parquet file of the pieces."""
        if self._columns is None:  # no piece at all: a table with no rows
            self._columns = _columns_for(pq.read_schema(source))
            if hasattr(source, "seek"):
                source.seek(0)
        columns, rows = self._columns, self.rows
        row_hash = np.concatenate(self._row_hashes) if self._row_hashes else np.zeros(0, np.uint64)
        self._row_hashes = []
        profiles = {c.index: c.profile(rows) for c in columns if not c.from_file}
        from_file = [c for c in columns if c.from_file]
        if from_file:
            read = _column_reader(source, [c.name for c in from_file if isinstance(c, _TextColumn)])
            lock = threading.Lock()

            def add_share(start: int, share: np.ndarray) -> None:
                with lock:  # a sum: the order the columns finish in does not matter
                    row_hash[start : start + share.size] += share

            def profile(group: list[_Column]) -> list[ColumnProfile]:
                table = read([c.name for c in group])
                results = []
                for i, column in enumerate(group):
                    values = table.column(i)
                    results.append(column.profile_values(values, rows, add_share))
                return results

            groups = [
                from_file[i : i + COLUMNS_PER_READ]
                for i in range(0, len(from_file), COLUMNS_PER_READ)
            ]
            with ThreadPoolExecutor(max_workers=threads) as pool:
                for group, results in zip(groups, pool.map(profile, groups), strict=True):
                    for column, result in zip(group, results, strict=True):
                        profiles[column.index] = result
        row_hash.sort()
        duplicates = rows - _distinct_sorted(row_hash) if rows else 0
        ordered = [profiles[c.index] for c in columns]
        warnings = [w for c in ordered for w in _column_warnings(c, rows)]
        return TableProfile(
            rows=rows, duplicate_rows=duplicates, columns=ordered, warnings=warnings
        )


def _column_reader(source: BinaryIO | str, text: list[str]) -> Callable[[list[str]], pa.Table]:
    """A function reading whole columns of the Parquet file `source`, safe to call from
    several threads. Text comes back dictionary-encoded, as it is stored: no string is built.

    A path is opened once per thread, so reads run side by side; without pre-buffering (which
    holds the byte ranges of every requested column chunk at once) and not memory-mapped
    (mapped pages count as the process's memory). A file object is one position shared by
    all, so its reads take turns."""
    if isinstance(source, str):
        local = threading.local()

        def read_path(names: list[str]) -> pa.Table:
            if not hasattr(local, "parquet"):
                local.parquet = pq.ParquetFile(source, read_dictionary=text, pre_buffer=False)
            return local.parquet.read(columns=names, use_threads=False)

        return read_path
    parquet = pq.ParquetFile(source, read_dictionary=text)
    lock = threading.Lock()

    def read_shared(names: list[str]) -> pa.Table:
        with lock:
            return parquet.read(columns=names, use_threads=False)

    return read_shared


def profile_table(source: BinaryIO | str, threads: int = 2) -> TableProfile:
    """Profile the Parquet file `source` (one stored before uploads were profiled on the way):
    the columns hashed on the way go through a TableProfiler a batch at a time, then it
    finishes from the file."""
    schema = pq.read_schema(source)
    if hasattr(source, "seek"):
        source.seek(0)
    profiler = TableProfiler(schema)
    streamed = [c.name for c in _columns_for(schema) if c.hashed_on_the_way]
    parquet = pq.ParquetFile(source)
    for batch in parquet.iter_batches(
        batch_size=PROFILE_BATCH_ROWS, columns=streamed, use_threads=False
    ):
        profiler.add(pa.Table.from_batches([batch]))
    if hasattr(source, "seek"):
        source.seek(0)
    return profiler.finish(source, threads)


class _Column:
    """One column's share of the profile, and of each row's hash (see `_mix`).

    A column `hashed_on_the_way` gets each piece in `add`, which returns its share of those
    rows' hashes. A column `from_file` is described by `profile_values` from the whole column,
    which hands its share of the rows' hashes to `add_share(first_row, shares)` when it was
    not hashed on the way; any other column, by `profile` from what `add` counted."""

    hashed_on_the_way = True
    from_file = False

    def __init__(self, index: int, name: str, dtype: pa.DataType) -> None:
        self.index = index
        self.name = name
        self.dtype = dtype

    def add(self, values: pa.ChunkedArray) -> np.ndarray:
        raise NotImplementedError

    def profile(self, rows: int) -> ColumnProfile:
        raise NotImplementedError

    def profile_values(
        self, values: pa.ChunkedArray, rows: int, add_share: Callable[[int, np.ndarray], None]
    ) -> ColumnProfile:
        raise NotImplementedError


def _columns_for(schema: pa.Schema) -> list[_Column]:
    return [_column_for(index, f) for index, f in enumerate(schema)]


def _column_for(index: int, f: pa.Field) -> _Column:
    dtype = f.type
    if _is_text(dtype) or pat.is_dictionary(dtype):
        return _TextColumn(index, f.name, dtype)
    if pat.is_integer(dtype) or pat.is_floating(dtype) or pat.is_decimal(dtype):
        return _NumericColumn(index, f.name, dtype)
    if pat.is_boolean(dtype):
        return _BooleanColumn(index, f.name, dtype)
    if pat.is_temporal(dtype):
        return _DatetimeColumn(index, f.name, dtype)
    if pat.is_null(dtype):
        return _EmptyColumn(index, f.name, dtype)
    raise DataError(f"column {f.name!r} has type {dtype}, which cannot be profiled")


def _is_text(dtype: pa.DataType) -> bool:
    return pat.is_string(dtype) or pat.is_large_string(dtype)


class _NumericColumn(_Column):
    """Hashed and its mean and variance taken on the way (merged piece by piece, as Chan et al.
    do: as exact as one pass over the column); quantiles and the distinct count need every
    value, sorted, so it is described from the file."""

    from_file = True

    def __init__(self, index: int, name: str, dtype: pa.DataType) -> None:
        super().__init__(index, name, dtype)
        self._count, self._mean, self._m2 = 0, 0.0, 0.0  # of the finite values

    def add(self, values: pa.ChunkedArray) -> np.ndarray:
        floats = _as_float(values)
        finite = np.isfinite(floats)
        all_finite = bool(finite.all())
        self._add_moments(floats if all_finite else floats[finite])
        codes = floats + 0.0  # -0.0 and 0.0 are one value
        if not all_finite:
            codes[np.isnan(codes)] = np.nan  # every NaN and missing value is one code
        return _mix(codes.view(np.uint64), self.index, in_place=True)

    def _add_moments(self, finite: np.ndarray) -> None:
        n = finite.size
        if n == 0:
            return
        mean = float(finite.mean())
        m2 = float(np.square(finite - mean).sum())
        total = self._count + n
        delta = mean - self._mean
        self._mean += delta * n / total
        self._m2 += m2 + delta * delta * self._count * n / total
        self._count = total

    def profile_values(
        self, values: pa.ChunkedArray, rows: int, add_share: Callable[[int, np.ndarray], None]
    ) -> ColumnProfile:
        finite = _finite_sorted(values)
        stats = None
        if finite.size:
            std = math.sqrt(self._m2 / (finite.size - 1)) if finite.size > 1 else 0.0
            stats = _numeric_sorted(finite, self._mean, std)
        unique = _distinct_sorted(finite)
        missing = rows - finite.size
        return ColumnProfile(self.name, "numeric", str(self.dtype), missing, unique, stats)


class _DatetimeColumn(_Column):
    from_file = True  # the distinct count needs every value

    def add(self, values: pa.ChunkedArray) -> np.ndarray:
        ints = pc.fill_null(_temporal_ints(values), _NO_TIME).to_numpy()
        return _mix(ints.view(np.uint64), self.index)

    def profile_values(
        self, values: pa.ChunkedArray, rows: int, add_share: Callable[[int, np.ndarray], None]
    ) -> ColumnProfile:
        missing = values.null_count
        unique, stats = 0, None
        if missing < rows:
            ints = pc.fill_null(_temporal_ints(values), _NO_TIME).to_numpy()
            unique = _distinct_sorted(np.sort(ints[ints != _NO_TIME]))
            low, high = pc.min_max(values).values()
            stats = DatetimeStats(_iso(low.as_py()), _iso(high.as_py()))
        dtype = str(self.dtype)
        return ColumnProfile(self.name, "datetime", dtype, missing, unique, datetime=stats)


class _BooleanColumn(_Column):
    def __init__(self, index: int, name: str, dtype: pa.DataType) -> None:
        super().__init__(index, name, dtype)
        self._counts = np.zeros(3, dtype=np.int64)  # False, True, missing
        self._shares = _mix(np.arange(3, dtype=np.uint64), index, in_place=True)  # per value

    def add(self, values: pa.ChunkedArray) -> np.ndarray:
        codes = pc.fill_null(pc.cast(values, pa.int8()), 2).to_numpy()
        self._counts += np.bincount(codes, minlength=3)
        return self._shares[codes]

    def profile(self, rows: int) -> ColumnProfile:
        counts = self._counts[:2]
        tops = [ValueCount(bool(v), int(counts[v])) for v in np.argsort(-counts, kind="stable")]
        tops = [t for t in tops if t.count]
        missing = int(self._counts[2])
        return ColumnProfile(
            self.name, "boolean", str(self.dtype), missing, len(tops), top_values=tops
        )


class _EmptyColumn(_Column):
    """Every cell empty: nothing to describe beyond that; one code for every row."""

    def add(self, values: pa.ChunkedArray) -> np.ndarray:
        return _mix(np.zeros(len(values), dtype=np.uint64), self.index, in_place=True)

    def profile(self, rows: int) -> ColumnProfile:
        return ColumnProfile(self.name, "categorical", str(self.dtype), rows, 0)


class _TextColumn(_Column):
    """Strings (or other dictionary-encoded values): counts per dictionary entry, read back
    dictionary-encoded, so no string is compared."""

    hashed_on_the_way = False
    from_file = True

    def profile_values(
        self, values: pa.ChunkedArray, rows: int, add_share: Callable[[int, np.ndarray], None]
    ) -> ColumnProfile:
        if not pat.is_dictionary(values.type):
            values = pc.dictionary_encode(values)
        values = values.unify_dictionaries()
        value_type = values.type.value_type
        dictionary = values.chunk(0).dictionary if values.num_chunks else pa.array([], value_type)
        # Each entry's share of the row hashes mixed once, then looked up per row: cheaper than
        # mixing each row. Entry 0 is for missing values, so an entry is its index + 1.
        shares = _mix(np.arange(len(dictionary) + 1, dtype=np.uint64), self.index, in_place=True)
        counts = np.zeros(len(dictionary) + 1, dtype=np.int64)
        start = 0
        for chunk in values.chunks:  # a piece at a time: no temporary the size of the column
            entries = pc.fill_null(chunk.indices, -1).to_numpy() + 1
            counts += np.bincount(entries, minlength=counts.size)
            add_share(start, shares[entries])
            start += entries.size
        counts = counts[1:]
        present = int(counts.sum())
        unique = int(np.count_nonzero(counts))
        is_text = False
        if present and unique / present > TEXT_UNIQUE_RATIO and _is_text(value_type):
            lengths = pc.utf8_length(dictionary).to_numpy(zero_copy_only=False)
            is_text = float((lengths * counts).sum()) / present >= TEXT_MEAN_LENGTH
        kind: ColumnType = "text" if is_text else "categorical"
        profile = ColumnProfile(self.name, kind, str(value_type), rows - present, unique)
        if not is_text:
            order = np.lexsort((np.arange(counts.size), -counts))[:TOP_VALUES]
            tops = dictionary.take(pa.array(order, pa.int64())).to_pylist()
            profile.top_values = [
                ValueCount(v, int(counts[i])) for v, i in zip(tops, order, strict=True) if counts[i]
            ]
        return profile


def _finite_sorted(values: pa.ChunkedArray) -> np.ndarray:
    """The finite values as float64, sorted: missing values, NaN and infinities left out.

    They are sorted in a buffer kept by the thread for the next column: a fresh one per column
    costs a page fault per 4 KB, more than the copy into it."""
    floats = _thread_buffer(len(values))
    start = 0
    for chunk in pc.cast(values, pa.float64(), safe=False).chunks:
        part = chunk.to_numpy(zero_copy_only=False)  # missing values as NaN
        floats[start : start + part.size] = part
        start += part.size
    # Sorted, NaN comes last and the infinities at either end: the finite values lie between.
    floats.sort()
    low = np.searchsorted(floats, -np.inf, side="right")
    high = np.searchsorted(floats, np.inf, side="left")
    return floats[low:high]


def _distinct_sorted(values: np.ndarray) -> int:
    if values.size == 0:
        return 0
    return 1 + int(np.count_nonzero(values[1:] != values[:-1]))


def _thread_buffer(size: int) -> np.ndarray:
    """`size` float64 of scratch space, the same for each call on a thread (so, one at a time)."""
    buffer = getattr(_buffers, "floats", None)
    if buffer is None or buffer.size < size:
        buffer = _buffers.floats = np.empty(size, dtype=np.float64)
    return buffer[:size]


_buffers = threading.local()


def _numeric_sorted(values: np.ndarray, mean: float, std: float) -> NumericStats:
    """Statistics of sorted finite values (some), with their `mean` and `std`; quantiles
    interpolate linearly, as numpy's do."""
    n = values.size
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
        mean=mean,
        std=std,
        quantiles={k: float(v) for k, v in zip(QUANTILES, quantiles, strict=True)},
        histogram=Histogram(edges=[float(e) for e in edges], counts=[int(c) for c in counts]),
    )


def _as_float(column: pa.ChunkedArray) -> np.ndarray:
    """float64 values, missing ones as NaN (a view of the column's buffer where it can be)."""
    return pc.cast(column, pa.float64(), safe=False).to_numpy()


def _top_values(column: pa.ChunkedArray, limit: int = TOP_VALUES) -> list[ValueCount]:
    counts = pc.value_counts(column.drop_null())
    if len(counts) == 0:
        return []
    order = pc.sort_indices(counts, sort_keys=[("counts", "descending"), ("values", "ascending")])
    top = counts.take(order[:limit])
    return [ValueCount(v["values"], v["counts"]) for v in top.to_pylist()]


def _iso(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _mix(codes: np.ndarray, index: int, in_place: bool = False) -> np.ndarray:
    """One column's share of each row's hash: the code salted by the column's position, then
    multiply-xorshift-multiply (half of splitmix64's finaliser, in place: this runs on every
    cell of the table), so that rows hash alike only when every column's value is alike.
    `in_place` mixes `codes` itself (uint64, ours to change) rather than a copy."""
    z = codes if in_place else codes.astype(np.uint64, copy=True)
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
