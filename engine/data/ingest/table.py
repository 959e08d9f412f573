"""The table every reader makes, whatever the format: the limits on its size, the checks on
its header, one schema across all its pieces (`conform`), the errors when these fail, and the
summary of its columns that `convert_to_parquet` returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pat

from engine.errors import DataError


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


def logical_type(dtype: pa.DataType) -> str:
    if pat.is_boolean(dtype):
        return "boolean"
    if pat.is_integer(dtype) or pat.is_floating(dtype) or pat.is_decimal(dtype):
        return "numeric"
    if pat.is_temporal(dtype):
        return "datetime"
    return "categorical"


def check_schema(schema: pa.Schema, limits: TableLimits) -> None:
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


def conform(
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
