"""CSV and TSV: the dialect sniffed from the head, the first piece parsed on every core with
its types inferred, each later piece as blocks of whole records side by side in the first one's
schema; an error is located on the file's line by reading the piece again with `csv`."""

from __future__ import annotations

import csv
import io
import re
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import BinaryIO

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.types as pat

from engine.data.ingest.formats import SNIFF_BYTES, UTF8_BOM
from engine.data.ingest.pieces import (
    NEWLINE,
    PARSE_THREADS,
    Piece,
    count_byte,
    first_bad_utf8,
    not_utf8,
    prefetched,
    read_pieces,
)
from engine.data.ingest.table import ColumnTypeConflict, conform
from engine.errors import DataError

SNIFF_ROWS = 100
DELIMITERS = (",", "\t", ";", "|")
# pyarrow names the row only when it reads on one thread.
CONVERSION_ERROR = re.compile(
    r"column #(\d+): (?:Row #\d+: )?CSV conversion error to \w+: invalid value '(.*)'"
)


@dataclass(frozen=True)
class CsvDialect:
    delimiter: str
    header: bool


class CsvReader:
    def __init__(self, source: BinaryIO, tab: bool, column_types: dict[str, pa.DataType]) -> None:
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
            for piece in prefetched(read_pieces(self.source, quoted=True)):
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

    def _parse_block(self, piece: Piece, start: int, end: int, schema: pa.Schema) -> pa.Table:
        """Records `piece.data[start:end]` of a piece after the first, in `schema`."""
        assert self.dialect is not None
        block = memoryview(piece.data)[start:end]

        def first_line() -> int:  # only for an error: counting lines costs
            return piece.first_line + count_byte(piece.data, NEWLINE, 0, start)

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
        return conform(
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
                line = first_bad_utf8(piece, first_line) or first_line
                try:
                    column = f.name
                except UnicodeDecodeError:  # the header itself is not UTF-8: no name to show
                    column = None
                raise not_utf8(line, column)
        return table

    def _locate(
        self, piece: bytes, first_line: int, message: str, schema: pa.Schema | None
    ) -> DataError:
        """Turn pyarrow's message into one that names the file's line."""
        bad = first_bad_utf8(piece, first_line)
        if bad is not None:
            return not_utf8(bad)
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
    # A column with no value in the first piece stays open to any type (see conform).
    return {f.name: f.type for f in schema if not pat.is_null(f.type)}


def _joined(blocks: list[Future[pa.Table]]) -> pa.Table:
    """One piece's table from its blocks' tables; an error is raised in the blocks' order."""
    tables = [block.result() for block in blocks]
    return tables[0] if len(tables) == 1 else pa.concat_tables(tables)


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
