"""Raw upload -> canonical Parquet, one bounded piece at a time so memory stays bounded.

CSV/TSV and JSON Lines are read in pieces of about `PIECE_BYTES`, each cut at a record
boundary (a newline outside quotes), and each parsed by pyarrow on all cores with the column
names and types the first piece established (a CSV piece as blocks of whole records, side by
side). A problem in a piece is located by re-scanning that piece only (it is still in memory),
so errors name the file's line. A caller may look at each piece as it is written (`on_piece`),
to profile the table without reading all of it again.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
import queue
import re
import threading
import zipfile
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import BinaryIO, Literal, NamedTuple, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq
import pyarrow.types as pat

from engine.errors import DataError

SourceFormat = Literal["csv", "tsv", "jsonl", "parquet", "npz", "image_zip"]
PARQUET_MAGIC = b"PAR1"
ZIP_MAGIC = b"PK\x03\x04"
UTF8_BOM = codecs.BOM_UTF8
# What is cut, parsed and profiled at a time: a few pieces are in flight at once, so this
# bounds memory; big enough to keep the cores busy.
PIECE_BYTES = 4 << 20
PARSE_THREADS = os.cpu_count() or 1
# CSV pieces after the first are parsed as blocks of about this size, one per core at a time,
# each whole in one call: pyarrow then never splits a block itself, so it needs no quote-aware
# splitting (`newlines_in_values`, a quarter more than the parse itself) for quoted newlines.
# A piece is shared among the cores; not much less than this, as each call has a fixed cost.
BLOCK_BYTES = max(PIECE_BYTES // PARSE_THREADS, 512 << 10)
# Pieces are written to Parquet in row groups of at least this much parsed data: fewer,
# larger row groups are cheaper to write and to read back.
ROW_GROUP_BYTES = 8 << 20
# Bytes are counted (newlines, quotes) this many at a time, into a buffer kept per thread.
COUNT_CHUNK_BYTES = 1 << 20
NEWLINE, QUOTE = ord("\n"), ord('"')
# One record longer than this is refused rather than buffered.
MAX_RECORD_BYTES = 64 << 20
SNIFF_BYTES = 64 << 10
SNIFF_ROWS = 100
DELIMITERS = (",", "\t", ";", "|")
TSV_NAMES = (".tsv", ".tab")
JSONL_NAMES = (".jsonl", ".ndjson")
# pyarrow names the row only when it reads on one thread.
CONVERSION_ERROR = re.compile(
    r"column #(\d+): (?:Row #\d+: )?CSV conversion error to \w+: invalid value '(.*)'"
)


class TableTooLarge(DataError):
    """The table has more rows or columns than the service accepts."""

    def __init__(self, what: str, limit: int) -> None:
        super().__init__(f"the table has more than {limit:,} {what} (the limit)")
        self.what = what
        self.limit = limit


class ColumnTypeConflict(DataError):
    """A later piece holds a value the type inferred from the first piece cannot take.

    `widened` is the type to read the column as instead (float64 for an integer column that
    meets a decimal, else string); the caller may convert again with it.
    """

    def __init__(self, column: str, line: int | None, value: str, widened: pa.DataType) -> None:
        where = f"line {line}: " if line else ""
        super().__init__(
            f"{where}column {column!r} has the value {value!r}, unlike the rows before it"
        )
        self.column = column
        self.widened = widened


@dataclass(frozen=True)
class TableLimits:
    max_rows: int = 50_000_000
    max_columns: int = 10_000


@dataclass
class ColumnSummary:
    name: str
    type: str  # numeric | boolean | categorical | datetime
    dtype: str
    missing: int = 0


@dataclass
class TableSummary:
    rows: int
    columns: list[ColumnSummary] = field(default_factory=list)
    # What the file turned out to be: "csv", "tsv" (tab-delimited), "jsonl" or "parquet".
    source_format: str = "csv"


@dataclass(frozen=True)
class CsvDialect:
    delimiter: str
    header: bool


def logical_type(dtype: pa.DataType) -> str:
    if pat.is_boolean(dtype):
        return "boolean"
    if pat.is_integer(dtype) or pat.is_floating(dtype) or pat.is_decimal(dtype):
        return "numeric"
    if pat.is_temporal(dtype):
        return "datetime"
    return "categorical"


def detect_format(
    head: bytes, filename: str | None, source: BinaryIO | None = None
) -> SourceFormat:
    """By content first (magic bytes, a leading `{`), the name for TSV and to catch mistakes.

    A ZIP is NPZ arrays when its members are `.npy` files, else a folder-per-class image set.
    """
    name = (filename or "").lower()
    if head.startswith(PARQUET_MAGIC):
        return "parquet"
    if name.endswith((".parquet", ".pq")):
        raise DataError("file is named .parquet but is not a Parquet file")
    if head.startswith(ZIP_MAGIC):
        if source is None:
            raise DataError("a ZIP file needs its content to tell NPZ from images")
        try:
            names = zipfile.ZipFile(source).namelist()
        except zipfile.BadZipFile as exc:
            raise DataError(f"cannot read ZIP: {exc}") from exc
        return "npz" if names and all(n.endswith(".npy") for n in names) else "image_zip"
    if name.endswith((".npz", ".zip")):
        raise DataError(f"file is named {filename!r} but is not a ZIP archive")
    if name.endswith(JSONL_NAMES) or head.removeprefix(UTF8_BOM).lstrip()[:1] == b"{":
        return "jsonl"
    if name.endswith(TSV_NAMES):
        return "tsv"
    return "csv"


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
        reader = _CsvReader(source, tab=fmt == "tsv", column_types=column_types or {})
    elif fmt == "jsonl":
        reader = _JsonLinesReader(source)
    elif fmt == "parquet":
        reader = _ParquetReader(source)
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
                    _check_schema(table.schema, limits)
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


def _check_schema(schema: pa.Schema, limits: TableLimits) -> None:
    if len(schema) > limits.max_columns:
        raise TableTooLarge("columns", limits.max_columns)
    try:
        schema.names  # noqa: B018 - pyarrow decodes the names here, and fails on bad bytes
    except UnicodeDecodeError:
        raise DataError(
            "the header has bytes that are not UTF-8 text; save the file as UTF-8"
        ) from None
    seen: set[str] = set()
    for f in schema:
        if not f.name.strip():
            raise DataError("a column has an empty name in the header")
        if f.name in seen:
            raise DataError(f"column {f.name!r} appears twice in the header")
        seen.add(f.name)
        if pat.is_nested(f.type):
            raise DataError(f"column {f.name!r} holds nested lists or objects; flatten them")


# --- pieces -----------------------------------------------------------------------------------


class _Piece(NamedTuple):
    """Whole records: `data[:end]`, kept as a reference (copying megabytes is not free); as
    `blocks` of whole records too, (start, end) offsets of about BLOCK_BYTES each."""

    data: bytes
    end: int
    first_line: int
    blocks: list[tuple[int, int]]

    def content(self) -> bytes:
        """The records as bytes of their own (a copy, unless they are all of `data`)."""
        return self.data if self.end == len(self.data) else self.data[: self.end]


def _read_more(source: BinaryIO, prefix: bytes, size: int) -> tuple[bytes, bool]:
    """`prefix` and the next bytes up to `size` in all, joined once; and whether the source
    ended (a stream may answer short reads, so only an empty read ends it)."""
    parts, got = ([prefix] if prefix else []), len(prefix)
    while got < size:
        data = source.read(size - got)
        if not data:
            return b"".join(parts), True
        parts.append(data)
        got += len(data)
    return b"".join(parts), False


_T = TypeVar("_T")


def _prefetched(items: Iterator[_T], depth: int = 1) -> Iterator[_T]:
    """`items`, produced on a thread of their own: the next piece is read and cut (Python work,
    under the GIL) while pyarrow parses this one (C++, on both cores)."""
    handoff: queue.Queue = queue.Queue(depth)
    done = object()
    stop = threading.Event()

    def offer(item: object) -> bool:
        """Hand `item` over; False once the consumer has stopped (it reads no more)."""
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer(item):
                    return
            offer(done)
        except BaseException as exc:  # raised again on the consuming side
            offer(exc)

    producer = threading.Thread(target=produce, name="ingest-pieces", daemon=True)
    producer.start()
    try:
        while (item := handoff.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        producer.join()


def _pieces(source: BinaryIO, quoted: bool) -> Iterator[_Piece]:
    """Whole records, cut after a newline outside quotes, with the number of their first line.

    Quotes are balanced at a cut when the block before it holds an even number of `"`: with
    quotes doubled inside quoted fields, an odd count means the cut would fall in a field.
    """
    buffer = b""
    line = 1
    at_end = False
    want = PIECE_BYTES
    while not at_end or buffer:
        if not at_end and len(buffer) < want:
            buffer, at_end = _read_more(source, buffer, want)
        # `in` is a memchr, far cheaper than counting: most files have no quote at all.
        blocks = _record_blocks(buffer, quoted and b'"' in buffer, at_end)
        if not blocks:
            if len(buffer) >= MAX_RECORD_BYTES:
                raise DataError(
                    f"line {line}: a record longer than {MAX_RECORD_BYTES >> 20} MB "
                    "(or a quote that is never closed)"
                )
            want = len(buffer) * 2
            continue
        end = blocks[-1][1]
        yield _Piece(buffer, end, line, blocks)
        line += _count_byte(buffer, NEWLINE, 0, end)
        buffer = buffer[end:]
        want = PIECE_BYTES


def _record_blocks(buffer: bytes, quoted: bool, at_end: bool) -> list[tuple[int, int]]:
    """`buffer`'s whole records as consecutive (start, end) spans of about BLOCK_BYTES: all of
    it when the source is `at_end`, else up to its last whole record (none if it has none)."""
    spans, start, size = [], 0, len(buffer)
    while start < size:
        # The last block takes up to one and a half: no sliver of a block at the end.
        last = size - start <= BLOCK_BYTES + BLOCK_BYTES // 2
        if last and at_end:
            cut = size
        else:
            cut = _safe_cut(buffer, quoted, start, size if last else start + BLOCK_BYTES)
            if cut == start and not last:  # a record longer than a block: a longer block
                cut = _safe_cut(buffer, quoted, start, size)
            if cut == start:
                if not at_end:
                    break  # the rest waits for more bytes
                cut = size  # the last record, with no newline after it
        spans.append((start, cut))
        start = cut
    return spans


def _safe_cut(buffer: bytes, quoted: bool, start: int, end: int) -> int:
    """The end of the last whole record in `buffer[start:end]` (`start` when there is none),
    where `start` is the start of a record."""
    cut = buffer.rfind(b"\n", start, end) + 1
    if cut <= start or not quoted:
        return max(cut, start)
    quotes = _count_byte(buffer, QUOTE, start, cut)
    while cut > start and quotes % 2:
        previous = max(buffer.rfind(b"\n", start, cut - 1) + 1, start)
        quotes -= buffer.count(b'"', previous, cut)
        cut = previous
    return cut


def _count_byte(data: bytes, byte: int, start: int, end: int) -> int:
    """How many times `byte` occurs in `data[start:end]`. numpy counts a few times faster than
    `bytes.count` (this runs over every byte of an upload), a megabyte at a time into a buffer
    kept per thread: a fresh temporary the size of a piece costs more in page faults than the
    count itself."""
    if end <= start:
        return 0
    buffer = getattr(_count_buffers, "buffer", None)
    if buffer is None:
        buffer = _count_buffers.buffer = np.empty(COUNT_CHUNK_BYTES, dtype=bool)
    view = np.frombuffer(data, np.uint8, end - start, start)
    total = 0
    for at in range(0, view.size, COUNT_CHUNK_BYTES):
        part = view[at : at + COUNT_CHUNK_BYTES]
        matches = buffer[: part.size]
        np.equal(part, byte, out=matches)
        total += int(np.count_nonzero(matches))
    return total


_count_buffers = threading.local()


def _line_of_offset(piece: bytes, offset: int, first_line: int) -> int:
    return first_line + piece.count(b"\n", 0, offset)


def _first_bad_utf8(piece: bytes, first_line: int) -> int | None:
    """The line of the first byte that is not UTF-8, or None when the piece decodes."""
    try:
        piece.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _line_of_offset(piece, exc.start, first_line)
    return None


def _not_utf8(line: int, column: str | None = None) -> DataError:
    where = f" in column {column!r}" if column else ""
    return DataError(f"line {line}: bytes that are not UTF-8 text{where}; save the file as UTF-8")


# --- CSV and TSV ------------------------------------------------------------------------------


class _CsvReader:
    def __init__(self, source: BinaryIO, tab: bool, column_types: dict[str, pa.DataType]):
        self.source = source
        self.tab = tab
        self.column_types = column_types
        self.source_format = "tsv" if tab else "csv"
        self.dialect: CsvDialect | None = None
        self.names: list[str] = []

    def tables(self) -> Iterator[pa.Table]:
        schema: pa.Schema | None = None
        held, held_line = b"", 1
        pool = ThreadPoolExecutor(max_workers=PARSE_THREADS, thread_name_prefix="csv-parse")
        # The pieces being parsed, in order, as their blocks' tables to come.
        parsing: deque[list[Future[pa.Table]]] = deque()
        try:
            for piece in _prefetched(_pieces(self.source, quoted=True)):
                if schema is None:
                    # The types come from the first piece with a data row in it.
                    content = held + piece.content()
                    first_line, held = held_line if held else piece.first_line, b""
                    if first_line == 1 and not content.removeprefix(UTF8_BOM).strip():
                        return
                    self.dialect = sniff_csv(content[:SNIFF_BYTES], tab=self.tab)
                    self.source_format = "tsv" if self.dialect.delimiter == "\t" else "csv"
                    table = self._parse_first(content, first_line)
                    if table.num_rows == 0:
                        held, held_line = content, first_line
                        continue
                    schema = table.schema
                    yield table
                    continue
                parsing.append(
                    [
                        pool.submit(self._parse_block, piece, start, end, schema)
                        for start, end in piece.blocks
                    ]
                )
                # One piece is parsed while the one before it is handed on (written and
                # profiled): the cores stay busy (a tenth off an upload's time, measured).
                if len(parsing) > 1:
                    yield _joined(parsing.popleft())
            while parsing:
                yield _joined(parsing.popleft())
            if held:
                yield self._parse_first(held, held_line)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _parse_block(self, piece: _Piece, start: int, end: int, schema: pa.Schema) -> pa.Table:
        """Records `piece.data[start:end]` of a piece after the first, in `schema`."""
        assert self.dialect is not None
        block = memoryview(piece.data)[start:end]

        def first_line() -> int:  # only for an error: counting lines costs
            return piece.first_line + _count_byte(piece.data, NEWLINE, 0, start)

        try:
            table = pacsv.read_csv(
                pa.py_buffer(block),
                # All in one block on this thread: pyarrow splits nothing, so a quoted newline
                # anywhere in it is read as what it is.
                read_options=pacsv.ReadOptions(
                    column_names=schema.names, block_size=end - start + 1, use_threads=False
                ),
                parse_options=pacsv.ParseOptions(delimiter=self.dialect.delimiter),
                # An empty cell is a missing value in a text column too, not the category "".
                convert_options=pacsv.ConvertOptions(
                    column_types=_known_types(schema), strings_can_be_null=True
                ),
            )
        except pa.ArrowInvalid as exc:
            if "Empty CSV" in str(exc):  # nothing but blank lines
                return schema.empty_table()
            raise self._locate(bytes(block), first_line(), str(exc), schema) from exc
        return _conform(
            table,
            schema,
            lambda row: _line_of_record(bytes(block), first_line(), self.dialect, row),
        )

    def _parse_first(self, piece: bytes, first_line: int) -> pa.Table:
        """The first piece, its column types inferred (but for those given), on every core."""
        assert self.dialect is not None
        names = None if self.dialect.header else _generated_names(piece, self.dialect)
        try:
            table = pacsv.read_csv(
                pa.py_buffer(piece),
                read_options=pacsv.ReadOptions(
                    column_names=names, block_size=1 << 20, use_threads=True
                ),
                # Quote-aware block splitting is much slower; a piece without a quote has no
                # quoted newline to protect.
                parse_options=pacsv.ParseOptions(
                    delimiter=self.dialect.delimiter, newlines_in_values=b'"' in piece
                ),
                # An empty cell is a missing value in a text column too, not the category "".
                convert_options=pacsv.ConvertOptions(
                    column_types=self.column_types, strings_can_be_null=True
                ),
            )
        except pa.ArrowInvalid as exc:
            raise self._locate(piece, first_line, str(exc), None) from exc
        for f in table.schema:
            if pat.is_binary(f.type) or pat.is_large_binary(f.type):
                line = _first_bad_utf8(piece, first_line) or first_line
                try:
                    column = f.name
                except UnicodeDecodeError:  # the header itself is not UTF-8: no name to show
                    column = None
                raise _not_utf8(line, column)
        return table

    def _locate(
        self, piece: bytes, first_line: int, message: str, schema: pa.Schema | None
    ) -> DataError:
        """Turn pyarrow's message into one that names the file's line."""
        bad = _first_bad_utf8(piece, first_line)
        if bad is not None:
            return _not_utf8(bad)
        if "Empty CSV" in message:
            return DataError("the file is empty")
        ragged = _first_ragged_record(piece, first_line, self.dialect, schema)
        if ragged is not None:
            return ragged
        conversion = CONVERSION_ERROR.search(message)
        if conversion and schema is not None:
            index, value = int(conversion.group(1)), conversion.group(2)
            column = schema.field(index)
            line = _line_of_value(piece, first_line, self.dialect, index, value)
            return ColumnTypeConflict(column.name, line, value, _widen(column.type, value))
        return DataError(f"line {first_line} or later: cannot parse CSV: {message}")


def _known_types(schema: pa.Schema) -> dict[str, pa.DataType]:
    # A column with no value in the first piece stays open to any type (see _conform).
    return {f.name: f.type for f in schema if not pat.is_null(f.type)}


def _joined(blocks: list[Future[pa.Table]]) -> pa.Table:
    """One piece's table from its blocks' tables; an error is raised in the blocks' order."""
    tables = [block.result() for block in blocks]
    return tables[0] if len(tables) == 1 else pa.concat_tables(tables)


def _conform(
    table: pa.Table, schema: pa.Schema, line_of_row: Callable[[int], int | None]
) -> pa.Table:
    """`table` in the first piece's schema. A column that was empty there and has values now
    is a ColumnTypeConflict: the file must be read again with that column's type."""
    extra = [name for name in table.column_names if name not in schema.names]
    if extra:
        line = line_of_row(_first_valid(table.column(extra[0])))
        raise DataError(f"{_at(line)}field {extra[0]!r} is not in the first rows")
    columns = []
    for f in schema:
        if f.name not in table.column_names:
            columns.append(pa.nulls(table.num_rows, f.type))
            continue
        column = table.column(f.name)
        if pat.is_null(f.type) and not pat.is_null(column.type):
            row = _first_valid(column)
            value = str(column[row].as_py())
            raise ColumnTypeConflict(f.name, line_of_row(row), value, column.type)
        columns.append(column)
    return pa.table(columns, schema=schema)


def _first_valid(column: pa.ChunkedArray) -> int:
    return pc.index(column.is_valid(), True).as_py()


def _at(line: int | None) -> str:
    return f"line {line}: " if line else ""


def _line_of_record(
    piece: bytes, first_line: int, dialect: CsvDialect | None, row: int
) -> int | None:
    """The line where data record `row` (0-based, not counting a header) of `piece` starts."""
    if dialect is None:
        return None
    text = piece.removeprefix(UTF8_BOM).decode("utf-8", "replace")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=dialect.delimiter)
    start, seen = 1, 0
    for record in reader:
        if record:
            if seen == row:
                return first_line + start - 1
            seen += 1
        start = reader.line_num + 1
    return None


def _generated_names(piece: bytes, dialect: CsvDialect) -> list[str]:
    first = next(_records(piece[:SNIFF_BYTES], dialect.delimiter), [])
    return [f"column_{i + 1}" for i in range(len(first))]


def _records(data: bytes, delimiter: str) -> Iterator[list[str]]:
    text = data.removeprefix(UTF8_BOM).decode("utf-8", "replace")
    return (row for row in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter) if row)


def _first_ragged_record(
    piece: bytes, first_line: int, dialect: CsvDialect | None, schema: pa.Schema | None
) -> DataError | None:
    if dialect is None:
        return None
    text = piece.removeprefix(UTF8_BOM).decode("utf-8", "replace")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=dialect.delimiter)
    expected = len(schema) if schema is not None else None
    start = 1
    for row in reader:
        if row:
            if expected is None:
                expected = len(row)
            elif len(row) != expected:
                line = first_line + start - 1
                return DataError(f"line {line}: expected {expected} fields, found {len(row)}")
        start = reader.line_num + 1
    return None


def _line_of_value(
    piece: bytes, first_line: int, dialect: CsvDialect | None, index: int, value: str
) -> int | None:
    if dialect is None:
        return None
    text = piece.decode("utf-8", "replace")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=dialect.delimiter)
    start = 1
    for row in reader:
        if len(row) > index and row[index] == value:
            return first_line + start - 1
        start = reader.line_num + 1
    return None


def _widen(dtype: pa.DataType, value: str) -> pa.DataType:
    if pat.is_integer(dtype):
        try:
            float(value)
            return pa.float64()
        except ValueError:
            pass
    return pa.string()


def sniff_csv(head: bytes, tab: bool = False) -> CsvDialect:
    """The delimiter (`,` tab `;` `|`) and whether the first row is a header, from the head.

    The delimiter is the one that splits the sampled records into the same number (> 1) of
    fields most consistently. The first row is data, not a header, when every field in it is
    a number and the rows below hold numbers (or nothing) in the same columns.
    """
    # Whole lines only: the head may stop mid-record.
    cut = head.rfind(b"\n")
    sample = head[: cut + 1] if cut > 0 else head
    delimiter = "\t" if tab else _sniff_delimiter(sample)
    rows = []
    for row in _records(sample, delimiter):
        rows.append(row)
        if len(rows) >= SNIFF_ROWS:
            break
    header = not (rows and _is_data_row(rows[0], rows[1:]))
    return CsvDialect(delimiter, header)


def _sniff_delimiter(sample: bytes) -> str:
    best, best_score = ",", (0.0, 0)
    for delimiter in DELIMITERS:
        counts = []
        for row in _records(sample, delimiter):
            counts.append(len(row))
            if len(counts) >= SNIFF_ROWS:
                break
        if not counts or counts[0] < 2:
            continue
        consistency = sum(c == counts[0] for c in counts) / len(counts)
        score = (consistency, counts[0])
        if score > best_score:
            best, best_score = delimiter, score
    return best


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _is_data_row(first: list[str], rest: list[list[str]]) -> bool:
    if not all(_is_number(v) for v in first):
        return False
    for i in range(len(first)):
        below = [row[i] for row in rest if len(row) > i and row[i].strip()]
        if below and not all(_is_number(v) for v in below):
            return False
    return True


# --- JSON Lines -------------------------------------------------------------------------------


class _JsonLinesReader:
    source_format = "jsonl"

    def __init__(self, source: BinaryIO) -> None:
        self.source = source

    def tables(self) -> Iterator[pa.Table]:
        schema: pa.Schema | None = None
        for part in _prefetched(_pieces(self.source, quoted=False)):
            piece, first_line = part.content(), part.first_line
            if first_line == 1:
                piece = piece.removeprefix(UTF8_BOM)
            if schema is None and not piece.strip():
                continue
            options = pajson.ParseOptions(newlines_in_values=False)
            if schema is not None:
                # Fields empty so far stay open to any type, and new ones are found by
                # _conform, with their line.
                known = [f for f in schema if not pat.is_null(f.type)]
                options = pajson.ParseOptions(
                    explicit_schema=pa.schema(known), unexpected_field_behavior="infer"
                )
            try:
                table = pajson.read_json(
                    pa.py_buffer(piece),
                    read_options=pajson.ReadOptions(block_size=1 << 20, use_threads=True),
                    parse_options=options,
                )
            except pa.ArrowInvalid as exc:
                raise _locate_json(piece, first_line, schema, str(exc)) from exc
            if schema is None:
                schema = table.schema
            else:
                table = _conform(table, schema, partial(_line_of_json_row, piece, first_line))
            yield table


def _line_of_json_row(piece: bytes, first_line: int, row: int) -> int | None:
    seen = 0
    for offset, raw in enumerate(piece.splitlines()):
        if raw.strip():
            if seen == row:
                return first_line + offset
            seen += 1
    return None


def _locate_json(
    piece: bytes, first_line: int, schema: pa.Schema | None, message: str
) -> DataError:
    bad = _first_bad_utf8(piece, first_line)
    if bad is not None:
        return _not_utf8(bad)
    known = set(schema.names) if schema is not None else None
    for offset, raw in enumerate(piece.splitlines()):
        if not raw.strip():
            continue
        line = first_line + offset
        try:
            value = json.loads(raw)
        except ValueError as exc:
            return DataError(f"line {line}: not valid JSON ({exc.msg})")
        if not isinstance(value, dict):
            return DataError(f"line {line}: expected a JSON object, found {type(value).__name__}")
        if known is not None:
            extra = sorted(set(value) - known)
            if extra:
                return DataError(f"line {line}: field {extra[0]!r} is not in the first rows")
    return DataError(f"line {first_line} or later: cannot read JSON Lines: {message}")


# --- Parquet ----------------------------------------------------------------------------------


class _ParquetReader:
    source_format = "parquet"

    def __init__(self, source: BinaryIO) -> None:
        self.source = source

    def tables(self) -> Iterator[pa.Table]:
        try:
            parquet = pq.ParquetFile(self.source)
            if parquet.metadata.num_rows == 0:
                yield parquet.schema_arrow.empty_table()
            for batch in parquet.iter_batches(batch_size=256 << 10):
                yield pa.Table.from_batches([batch])
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataError(f"cannot read Parquet: {exc}") from exc
