"""JSON Lines: each piece parsed by pyarrow on every core in the schema of the first, an error
located on the file's line by reading the piece's lines again with `json`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import partial
from typing import BinaryIO

import pyarrow as pa
import pyarrow.json as pajson
import pyarrow.types as pat

from engine.data.ingest.formats import UTF8_BOM
from engine.data.ingest.pieces import first_bad_utf8, not_utf8, prefetched, read_pieces
from engine.data.ingest.table import conform
from engine.errors import DataError


class JsonLinesReader:
    source_format = "jsonl"

    def __init__(self, source: BinaryIO) -> None:
        self.source = source

    def tables(self) -> Iterator[pa.Table]:
        schema: pa.Schema | None = None
        for part in prefetched(read_pieces(self.source, quoted=False)):
            piece, first_line = part.content(), part.first_line
            if first_line == 1:
                piece = piece.removeprefix(UTF8_BOM)
            if schema is None and not piece.strip():
                continue
            options = pajson.ParseOptions(newlines_in_values=False)
            if schema is not None:
                # Fields empty so far stay open to any type, and new ones are found by
                # conform, with their line.
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
                table = conform(table, schema, partial(_line_of_json_row, piece, first_line))
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
    bad = first_bad_utf8(piece, first_line)
    if bad is not None:
        return not_utf8(bad)
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
