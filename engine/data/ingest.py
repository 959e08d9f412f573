"""Raw upload -> canonical Parquet, one record batch at a time so memory stays bounded."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, Literal

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pyarrow.types as pat

from engine.errors import DataError

SourceFormat = Literal["csv", "parquet", "npz", "image_zip"]
PARQUET_MAGIC = b"PAR1"
ZIP_MAGIC = b"PK\x03\x04"
CSV_BLOCK_BYTES = 4 << 20


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
    """By content first (Parquet and ZIP magic bytes), the name only to catch mistakes.

    A ZIP is NPZ arrays when its members are `.npy` files, else a folder-per-class image set.
    """
    if head.startswith(PARQUET_MAGIC):
        return "parquet"
    if filename and filename.lower().endswith((".parquet", ".pq")):
        raise DataError("file is named .parquet but is not a Parquet file")
    if head.startswith(ZIP_MAGIC):
        if source is None:
            raise DataError("a ZIP file needs its content to tell NPZ from images")
        try:
            names = zipfile.ZipFile(source).namelist()
        except zipfile.BadZipFile as exc:
            raise DataError(f"cannot read ZIP: {exc}") from exc
        return "npz" if names and all(n.endswith(".npy") for n in names) else "image_zip"
    if filename and filename.lower().endswith((".npz", ".zip")):
        raise DataError(f"file is named {filename!r} but is not a ZIP archive")
    return "csv"


def _csv_batches(source: BinaryIO) -> Iterator[pa.RecordBatch]:
    try:
        reader = pacsv.open_csv(
            source,
            read_options=pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES),
            # An empty cell is a missing value in a text column too, not the category "".
            convert_options=pacsv.ConvertOptions(strings_can_be_null=True),
        )
        yield from reader
    except pa.ArrowInvalid as exc:
        raise DataError(f"cannot parse CSV: {exc}") from exc


def _parquet_batches(source: BinaryIO) -> Iterator[pa.RecordBatch]:
    try:
        yield from pq.ParquetFile(source).iter_batches()
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"cannot read Parquet: {exc}") from exc


def convert_to_parquet(source: BinaryIO, fmt: SourceFormat, sink: BinaryIO) -> TableSummary:
    """Stream `source` into `sink` as Parquet and summarise its columns on the way."""
    batches = _csv_batches(source) if fmt == "csv" else _parquet_batches(source)
    writer: pq.ParquetWriter | None = None
    rows = 0
    missing: list[int] = []
    try:
        for batch in batches:
            if writer is None:
                _check_column_names(batch.schema)
                _check_text_is_utf8(batch.schema)
                writer = pq.ParquetWriter(sink, batch.schema)
                missing = [0] * batch.num_columns
            writer.write_batch(batch)
            rows += batch.num_rows
            for i, column in enumerate(batch.columns):
                missing[i] += column.null_count
    finally:
        if writer is not None:
            writer.close()
    if writer is None or rows == 0:
        raise DataError("the file has no data rows")
    schema = writer.schema
    return TableSummary(
        rows=rows,
        columns=[
            ColumnSummary(f.name, logical_type(f.type), str(f.type), missing[i])
            for i, f in enumerate(schema)
        ],
    )


def _check_column_names(schema: pa.Schema) -> None:
    names = schema.names
    if any(not n.strip() for n in names):
        raise DataError("a column has an empty name in the header")
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise DataError(f"column {name!r} appears twice in the header")
        seen.add(name)


def _check_text_is_utf8(schema: pa.Schema) -> None:
    # pyarrow reads text that is not UTF-8 as raw bytes; no model can use such a column.
    for f in schema:
        if pat.is_binary(f.type) or pat.is_large_binary(f.type):
            raise DataError(f"column {f.name!r} is not UTF-8 text; save the file as UTF-8")
