"""Column statistics for the table profile, one class per kind of column, each also adding
its share of every row's hash (for the duplicate count); and the conversions the target profile
uses too (`as_float`, `temporal_ints`, `top_values`)."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pat

from engine.data.profile.results import (
    ColumnProfile,
    ColumnType,
    DatetimeStats,
    Histogram,
    NumericStats,
    ValueCount,
)
from engine.errors import DataError

HISTOGRAM_BINS = 20
TOP_VALUES = 20
QUANTILES = {"p5": 0.05, "p25": 0.25, "p50": 0.5, "p75": 0.75, "p95": 0.95}
# Text: a string column whose values are mostly unique and long (free text, not categories).
TEXT_UNIQUE_RATIO = 0.5
TEXT_MEAN_LENGTH = 20
# The row-hash code of a missing time.
_NO_TIME = -(2**63)


class Column:
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


def columns_for(schema: pa.Schema) -> list[Column]:
    return [_column_for(index, f) for index, f in enumerate(schema)]


def _column_for(index: int, f: pa.Field) -> Column:
    dtype = f.type
    if _is_text(dtype) or pat.is_dictionary(dtype):
        return TextColumn(index, f.name, dtype)
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


class _NumericColumn(Column):
    """Hashed and its mean and variance taken on the way (merged piece by piece, as Chan et al.
    do: as exact as one pass over the column); quantiles and the distinct count need every
    value, sorted, so it is described from the file."""

    from_file = True

    def __init__(self, index: int, name: str, dtype: pa.DataType) -> None:
        super().__init__(index, name, dtype)
        self._count, self._mean, self._m2 = 0, 0.0, 0.0  # of the finite values

    def add(self, values: pa.ChunkedArray) -> np.ndarray:
        floats = as_float(values)
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
        unique = distinct_sorted(finite)
        missing = rows - finite.size
        return ColumnProfile(self.name, "numeric", str(self.dtype), missing, unique, stats)


class _DatetimeColumn(Column):
    from_file = True  # the distinct count needs every value

    def add(self, values: pa.ChunkedArray) -> np.ndarray:
        ints = pc.fill_null(temporal_ints(values), _NO_TIME).to_numpy()
        return _mix(ints.view(np.uint64), self.index)

    def profile_values(
        self, values: pa.ChunkedArray, rows: int, add_share: Callable[[int, np.ndarray], None]
    ) -> ColumnProfile:
        missing = values.null_count
        unique, stats = 0, None
        if missing < rows:
            ints = pc.fill_null(temporal_ints(values), _NO_TIME).to_numpy()
            unique = distinct_sorted(np.sort(ints[ints != _NO_TIME]))
            low, high = pc.min_max(values).values()
            stats = DatetimeStats(_iso(low.as_py()), _iso(high.as_py()))
        dtype = str(self.dtype)
        return ColumnProfile(self.name, "datetime", dtype, missing, unique, datetime=stats)


class _BooleanColumn(Column):
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


class _EmptyColumn(Column):
    """Every cell empty: nothing to describe beyond that; one code for every row."""

    def add(self, values: pa.ChunkedArray) -> np.ndarray:
        return _mix(np.zeros(len(values), dtype=np.uint64), self.index, in_place=True)

    def profile(self, rows: int) -> ColumnProfile:
        return ColumnProfile(self.name, "categorical", str(self.dtype), rows, 0)


class TextColumn(Column):
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


def distinct_sorted(values: np.ndarray) -> int:
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


def as_float(column: pa.ChunkedArray) -> np.ndarray:
    """float64 values, missing ones as NaN (a view of the column's buffer where it can be)."""
    return pc.cast(column, pa.float64(), safe=False).to_numpy()


def top_values(column: pa.ChunkedArray, limit: int = TOP_VALUES) -> list[ValueCount]:
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


def temporal_ints(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Dates and times as the integers they are stored as (days, units since the epoch)."""
    as_int = pa.int32() if column.type.bit_width == 32 else pa.int64()
    chunks = [pc.cast(chunk.view(as_int), pa.int64()) for chunk in column.chunks]
    return pa.chunked_array(chunks, type=pa.int64())
