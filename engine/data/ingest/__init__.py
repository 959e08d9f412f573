"""Raw upload -> canonical Parquet, one bounded piece at a time so memory stays bounded.

CSV/TSV and JSON Lines are read in pieces of about `pieces.PIECE_BYTES`, each cut at a record
boundary (a newline outside quotes), and each parsed by pyarrow on all cores with the column
names and types the first piece established (a CSV piece as blocks of whole records, side by
side). A problem in a piece is located by re-scanning that piece only (it is still in memory),
so errors name the file's line. A caller may look at each piece as it is written (`on_piece`),
to profile the table without reading all of it again.

`convert_to_parquet`, here, drives one reader per format (`csv_reader`, `jsonl_reader`,
`parquet_reader`) and writes the pieces they yield. Beside them: `formats` tells the format from
a file's head, `pieces` cuts text into pieces of whole records, and `table` holds what every
reader's table must be (its limits, its header, one schema across its pieces) and its summary.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq
import pyarrow.types as pat

from engine.data.ingest.csv_reader import CsvReader
from engine.data.ingest.formats import SourceFormat
from engine.data.ingest.jsonl_reader import JsonLinesReader
from engine.data.ingest.parquet_reader import ParquetReader
from engine.data.ingest.table import (
    ColumnSummary,
    TableLimits,
    TableSummary,
    TableTooLarge,
    check_schema,
    logical_type,
)
from engine.errors import DataError

# Pieces are written to Parquet in row groups of at least this much parsed data: fewer,
# larger row groups are cheaper to write and to read back.
ROW_GROUP_BYTES = 8 << 20


def convert_to_parquet(
    source: BinaryIO,
    fmt: SourceFormat,
    sink: BinaryIO,
    limits: TableLimits | None = None,
    column_types: dict[str, pa.DataType] | None = None,
    on_piece: Callable[[pa.Table], None] | None = None,
) -> TableSummary:
    """Stream `source` into `sink` as Parquet and summarise its columns on the way.

    `source` needs only `read()`, except for Parquet. `column_types` overrides the types
    inferred from the first piece (see `ColumnTypeConflict`). `on_piece` sees each piece of the
    table, in order, while it is written (on this thread; the write runs on another).
    """
    limits = limits or TableLimits()
    if fmt in ("csv", "tsv"):
        reader = CsvReader(source, tab=fmt == "tsv", column_types=column_types or {})
    elif fmt == "jsonl":
        reader = JsonLinesReader(source)
    elif fmt == "parquet":
        reader = ParquetReader(source)
    else:
        raise DataError(f"{fmt} is not a table format")
    writer: pq.ParquetWriter | None = None
    rows = 0
    missing: list[int] = []
    # One row group (pieces gathered to ROW_GROUP_BYTES) is written on another core while the
    # next pieces are parsed.
    pending: Future | None = None
    group: list[pa.Table] = []
    tables = reader.tables()
    with ThreadPoolExecutor(max_workers=1) as background:

        def write_group(into: pq.ParquetWriter) -> Future:
            """The gathered pieces, submitted as one row group once the last one is written."""
            if pending is not None:
                pending.result()
            written = group[0] if len(group) == 1 else pa.concat_tables(group)
            group.clear()
            return background.submit(into.write_table, written)

        try:
            for table in tables:
                if writer is None:
                    check_schema(table.schema, limits)
                    writer = _parquet_writer(sink, table.schema)
                    missing = [0] * table.num_columns
                rows += table.num_rows
                if rows > limits.max_rows:
                    raise TableTooLarge("rows", limits.max_rows)
                group.append(table)
                if sum(t.nbytes for t in group) >= ROW_GROUP_BYTES:
                    pending = write_group(writer)
                for i, column in enumerate(table.columns):
                    missing[i] += column.null_count
                if on_piece is not None:
                    on_piece(table)
            if group and writer is not None:
                pending = write_group(writer)
            if pending is not None:
                pending.result()
        finally:
            # Stop the reader's threads now, not when an error's traceback lets it go.
            tables.close()
            if pending is not None:
                pending.exception()  # wait: the writer must be idle before it is closed
            if writer is not None:
                writer.close()
    if writer is None:
        raise DataError("the file is empty")
    if rows == 0:
        raise DataError("the file has no data rows")
    return TableSummary(
        rows=rows,
        columns=[
            ColumnSummary(f.name, logical_type(f.type), str(f.type), missing[i])
            for i, f in enumerate(writer.schema)
        ],
        source_format=reader.source_format,
    )


def _parquet_writer(sink: BinaryIO, schema: pa.Schema) -> pq.ParquetWriter:
    # Dictionary pages only where they pay (text), no compression, no statistics: several
    # times faster to write and to read back than the defaults; the dictionaries already
    # make the file smaller than its CSV.
    text = [f.name for f in schema if pat.is_string(f.type) or pat.is_large_string(f.type)]
    return pq.ParquetWriter(
        sink, schema, compression="none", use_dictionary=text, write_statistics=False
    )
