"""The table profile: begun on an upload's pieces while it is converted (`TableProfiler.add`)
and finished from the stored Parquet file, a few columns at a time on a few threads; or made
from a stored file alone (`profile_table`)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from engine.data.profile.column_warnings import column_warnings
from engine.data.profile.columns import Column, TextColumn, columns_for, distinct_sorted
from engine.data.profile.results import ColumnProfile, TableProfile

# Rows a stored file is profiled in at a time (profile_table).
PROFILE_BATCH_ROWS = 1 << 16
# Columns read back from the file at a time, per thread: every read walks each row group, so
# reading a few together costs much less per column (memory: that many columns per thread).
COLUMNS_PER_READ = 2


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
        self._columns = columns_for(schema) if schema is not None else None
        self._row_hashes: list[np.ndarray] = []

    def add(self, table: pa.Table) -> None:
        """Take the next piece: the table's columns, or at least those hashed on the way."""
        if self._columns is None:
            self._columns = columns_for(table.schema)
        row_hash = np.zeros(table.num_rows, dtype=np.uint64)
        for column in self._columns:
            if column.hashed_on_the_way:
                row_hash += column.add(table.column(column.name))
        self._row_hashes.append(row_hash)
        self.rows += table.num_rows

    def finish(self, source: BinaryIO | str, threads: int = 2) -> TableProfile:
        """The profile, reading what is left from `source`, the Parquet file of the pieces."""
        if self._columns is None:  # no piece at all: a table with no rows
            self._columns = columns_for(pq.read_schema(source))
            if hasattr(source, "seek"):
                source.seek(0)
        columns, rows = self._columns, self.rows
        row_hash = np.concatenate(self._row_hashes) if self._row_hashes else np.zeros(0, np.uint64)
        self._row_hashes = []
        profiles = {c.index: c.profile(rows) for c in columns if not c.from_file}
        from_file = [c for c in columns if c.from_file]
        if from_file:
            read = _column_reader(source, [c.name for c in from_file if isinstance(c, TextColumn)])
            lock = threading.Lock()

            def add_share(start: int, share: np.ndarray) -> None:
                with lock:  # a sum: the order the columns finish in does not matter
                    row_hash[start : start + share.size] += share

            def profile(group: list[Column]) -> list[ColumnProfile]:
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
        duplicates = rows - distinct_sorted(row_hash) if rows else 0
        ordered = [profiles[c.index] for c in columns]
        warnings = [w for c in ordered for w in column_warnings(c, rows)]
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
    streamed = [c.name for c in columns_for(schema) if c.hashed_on_the_way]
    parquet = pq.ParquetFile(source)
    for batch in parquet.iter_batches(
        batch_size=PROFILE_BATCH_ROWS, columns=streamed, use_threads=False
    ):
        profiler.add(pa.Table.from_batches([batch]))
    if hasattr(source, "seek"):
        source.seek(0)
    return profiler.finish(source, threads)
