"""Predict request bodies: the shapes a client may send, decoded into the list of instances the
engine takes (`engine.inference.Predictor.predict`).

JSON (`application/json`), an object with exactly one of:
- `instances`: a list of rows (objects of column -> value) or of arrays, as today;
- `dataframe_split` (MLflow scoring protocol): `{"columns": [...], "data": [[...]], "index"?}`;
- `dataframe_records` (MLflow): a list of rows;
- `inputs` (MLflow): a list of rows, an object of column -> list of values, or nested arrays
  for array models (images [C, H, W], sequences [T, C], vectors [D]).
CSV (`text/csv`): a header row, then one row per instance.

A missing value (JSON null, an empty CSV cell) stays None: the model's pipeline imputes it or
names it. JSON is parsed by orjson and CSV by pyarrow, so a large body costs one pass in C and
one list of row dicts. A malformed body raises `PayloadError` naming the field, which the
service's error handler answers with a 422.
"""

from __future__ import annotations

from typing import Any

import orjson
import pyarrow as pa
import pyarrow.csv as pacsv

from service.core.errors import InvalidInput

JSON_TYPES = ("application/json",)
CSV_TYPES = ("text/csv", "application/csv")
JSON_KEYS = ("instances", "dataframe_split", "dataframe_records", "inputs")


class PayloadError(InvalidInput):
    """A predict body that cannot be read as instances; `field` is where, `reason` is why."""

    code = "invalid_payload"

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}", details=[{"field": field, "reason": reason}])
        self.field = field
        self.reason = reason


def decode_predict_body(body: bytes, content_type: str | None) -> list[Any]:
    """The instances in a predict body of `content_type` (parameters such as charset ignored;
    none at all is JSON)."""
    media_type = (content_type or "application/json").split(";", 1)[0].strip().lower()
    if media_type in CSV_TYPES:
        instances = decode_csv(body)
    elif media_type in JSON_TYPES or media_type.endswith("+json"):
        instances = decode_json(body)
    else:
        raise PayloadError(
            "content-type",
            f"{media_type or 'none'} is not accepted; send application/json or text/csv",
        )
    if not instances:
        raise PayloadError("instances", "send at least one instance")
    return instances


def decode_json(body: bytes) -> list[Any]:
    if not body or body.isspace():
        raise PayloadError("body", "the body is empty")
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise PayloadError("body", f"not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise PayloadError("body", f"expected an object with one of {_keys()}")
    key = next(iter(document), None) if len(document) == 1 else None
    if key not in JSON_KEYS:
        unknown = sorted(set(document) - set(JSON_KEYS))
        if unknown:
            raise PayloadError(unknown[0], f"unknown key; expected one of {_keys()}")
        present = [name for name in JSON_KEYS if name in document]
        found = "none" if not present else " and ".join(present)
        raise PayloadError("body", f"expected exactly one of {_keys()}, got {found}")
    value = document[key]
    if key == "dataframe_split":
        return _split(value)
    if key == "dataframe_records":
        return _records(value, key)
    # `instances` and `inputs` take the same shapes: rows, columns or arrays.
    if isinstance(value, dict):
        return _columns(value, key)
    if not isinstance(value, list):
        raise PayloadError(key, f"expected a list of instances, got {_kind(value)}")
    if value and isinstance(value[0], dict):
        return _records(value, key)
    return value


def decode_csv(body: bytes) -> list[dict[str, Any]]:
    """Rows of a CSV body with a header, typed as pyarrow infers them (as a CSV dataset is
    read for training); an empty cell is None."""
    if not body.strip():
        raise PayloadError("csv", "the body is empty")
    bad_rows: list[Any] = []

    def refuse(row: Any) -> str:
        bad_rows.append(row)
        return "error"

    try:
        table = pacsv.read_csv(
            pa.py_buffer(body),
            # One thread, so a malformed row's line number is known.
            read_options=pacsv.ReadOptions(use_threads=False),
            parse_options=pacsv.ParseOptions(
                newlines_in_values=b'"' in body, invalid_row_handler=refuse
            ),
            convert_options=pacsv.ConvertOptions(strings_can_be_null=True),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        if bad_rows:
            row = bad_rows[0]
            where = f"csv line {row.number}" if row.number is not None else "csv"
            raise PayloadError(
                where, f"expected {row.expected_columns} values, got {row.actual_columns}"
            ) from exc
        raise PayloadError("csv", str(exc).splitlines()[0]) from exc
    names = table.column_names
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise PayloadError("csv header", f"column {duplicates[0]!r} appears more than once")
    return table.to_pylist()


def _split(value: Any) -> list[dict[str, Any]]:
    field = "dataframe_split"
    if not isinstance(value, dict):
        raise PayloadError(field, f"expected an object with columns and data, got {_kind(value)}")
    unknown = sorted(set(value) - {"columns", "data", "index"})
    if unknown:
        raise PayloadError(f"{field}.{unknown[0]}", "unknown key; expected columns, data, index")
    columns = value.get("columns")
    data = value.get("data")
    if not isinstance(columns, list):
        raise PayloadError(f"{field}.columns", f"expected a list of names, got {_kind(columns)}")
    _check_names(columns, f"{field}.columns")
    if not isinstance(data, list):
        raise PayloadError(f"{field}.data", f"expected a list of rows, got {_kind(data)}")
    width = len(columns)
    # Scans in C (map, set) first; the row that is wrong is looked for only when one is.
    if not all(map(list.__instancecheck__, data)) or {*map(len, data)} - {width}:
        for i, row in enumerate(data):
            if not isinstance(row, list):
                raise PayloadError(f"{field}.data[{i}]", f"expected a list, got {_kind(row)}")
            if len(row) != width:
                raise PayloadError(f"{field}.data[{i}]", f"expected {width} values, got {len(row)}")
    index = value.get("index")
    if index is not None:
        if not isinstance(index, list):
            raise PayloadError(f"{field}.index", f"expected a list, got {_kind(index)}")
        if len(index) != len(data):
            raise PayloadError(
                f"{field}.index", f"expected {len(data)} labels (one per row), got {len(index)}"
            )
    return [dict(zip(columns, row, strict=True)) for row in data]


def _records(value: Any, field: str) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise PayloadError(field, f"expected a list of objects, got {_kind(value)}")
    if not all(map(dict.__instancecheck__, value)):
        i, row = next((i, row) for i, row in enumerate(value) if not isinstance(row, dict))
        raise PayloadError(
            f"{field}[{i}]", f"expected an object of column values, got {_kind(row)}"
        )
    return value


def _columns(value: dict[str, Any], field: str) -> list[dict[str, Any]]:
    """{column: [values]} -> one row per position; every column as long as the first."""
    names = list(value)
    if not names:
        return []
    lengths = {}
    for name in names:
        column = value[name]
        if not isinstance(column, list):
            raise PayloadError(
                f"{field}.{name}", f"expected a list of values (one per row), got {_kind(column)}"
            )
        lengths[name] = len(column)
    first = names[0]
    for name in names[1:]:
        if lengths[name] != lengths[first]:
            raise PayloadError(
                f"{field}.{name}",
                f"expected {lengths[first]} values (as {field}.{first}), got {lengths[name]}",
            )
    return [dict(zip(names, row, strict=True)) for row in zip(*value.values(), strict=True)]


def _check_names(columns: list[Any], field: str) -> None:
    seen: set[str] = set()
    for i, name in enumerate(columns):
        if not isinstance(name, str):
            raise PayloadError(f"{field}[{i}]", f"expected a column name, got {_kind(name)}")
        if name in seen:
            raise PayloadError(f"{field}[{i}]", f"column {name!r} appears more than once")
        seen.add(name)


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)


def _keys() -> str:
    return ", ".join(JSON_KEYS)


_ROWS = {"type": "array", "items": {"type": "object", "additionalProperties": True}}
_ROWS_OR_ARRAYS = {
    "type": "array",
    "description": "Rows (objects of column -> value), or nested arrays for array models.",
    "items": {},
}
_COLUMNS = {
    "type": "object",
    "description": "Column -> list of values, one per row; every list the same length.",
    "additionalProperties": {"type": "array", "items": {}},
}


def predict_request_body() -> dict[str, Any]:
    """The OpenAPI `requestBody` of a predict route that reads its body with
    `decode_predict_body`, for the route's `openapi_extra`."""
    shapes = [
        {
            "title": "instances",
            "type": "object",
            "required": ["instances"],
            "properties": {"instances": {"oneOf": [_ROWS_OR_ARRAYS, _COLUMNS]}},
            "additionalProperties": False,
        },
        {
            "title": "dataframe_split",
            "type": "object",
            "required": ["dataframe_split"],
            "properties": {
                "dataframe_split": {
                    "type": "object",
                    "required": ["columns", "data"],
                    "properties": {
                        "columns": {"type": "array", "items": {"type": "string"}},
                        "data": {"type": "array", "items": {"type": "array", "items": {}}},
                        "index": {"type": "array", "items": {}},
                    },
                    "additionalProperties": False,
                }
            },
            "additionalProperties": False,
        },
        {
            "title": "dataframe_records",
            "type": "object",
            "required": ["dataframe_records"],
            "properties": {"dataframe_records": _ROWS},
            "additionalProperties": False,
        },
        {
            "title": "inputs",
            "type": "object",
            "required": ["inputs"],
            "properties": {"inputs": {"oneOf": [_ROWS_OR_ARRAYS, _COLUMNS]}},
            "additionalProperties": False,
        },
    ]
    return {
        "requestBody": {
            "required": True,
            "description": (
                "Instances shaped like the training data, as JSON (exactly one of `instances`, "
                "`dataframe_split`, `dataframe_records`, `inputs`; the last three follow MLflow's "
                "scoring protocol) or as CSV with a header row. A null or an empty cell is a "
                "missing value."
            ),
            "content": {
                "application/json": {
                    "schema": {"oneOf": shapes},
                    "examples": {
                        "instances": {"value": {"instances": [{"x": 1.5, "city": "Oslo"}]}},
                        "dataframe_split": {
                            "value": {
                                "dataframe_split": {
                                    "columns": ["x", "city"],
                                    "data": [[1.5, "Oslo"], [None, "Lima"]],
                                }
                            }
                        },
                        "dataframe_records": {
                            "value": {"dataframe_records": [{"x": 1.5, "city": "Oslo"}]}
                        },
                        "inputs": {"value": {"inputs": {"x": [1.5, 2.0], "city": ["Oslo", None]}}},
                    },
                },
                "text/csv": {
                    "schema": {"type": "string"},
                    "example": "x,city\n1.5,Oslo\n,Lima\n",
                },
            },
        }
    }
