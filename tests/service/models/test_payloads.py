"""Every accepted predict body gives the instances the equivalent `instances` body gives; a
malformed one is refused naming the field."""

from __future__ import annotations

import time

import orjson
import pytest

from service.core.errors import InvalidInput
from service.models.payloads import PayloadError, decode_predict_body, predict_request_body

JSON = "application/json"
CSV = "text/csv"

ROWS = [
    {"x": 1.5, "city": "Oslo", "n": 3},
    {"x": None, "city": "Lima", "n": 4},
    {"x": -2.0, "city": None, "n": 5},
]


def _json(document) -> bytes:
    return orjson.dumps(document)


def _split(rows: list[dict]) -> dict:
    columns = list(rows[0])
    return {"columns": columns, "data": [[row[c] for c in columns] for row in rows]}


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (_json({"instances": ROWS}), JSON),
        (_json({"dataframe_split": _split(ROWS)}), JSON),
        (_json({"dataframe_split": {**_split(ROWS), "index": [7, 8, 9]}}), JSON),
        (_json({"dataframe_records": ROWS}), JSON),
        (_json({"inputs": ROWS}), JSON),
        (_json({"inputs": {c: [row[c] for row in ROWS] for c in ROWS[0]}}), JSON),
        (_json({"instances": {c: [row[c] for row in ROWS] for c in ROWS[0]}}), JSON),
        (b"x,city,n\n1.5,Oslo,3\n,Lima,4\n-2.0,,5\n", CSV),
        (b'x,city,n\r\n1.5,"Oslo",3\r\n,Lima,4\r\n-2.0,,5\r\n', "text/csv; charset=utf-8"),
        (_json({"instances": ROWS}), "application/json; charset=utf-8"),
        (_json({"instances": ROWS}), None),
    ],
    ids=[
        "instances",
        "dataframe_split",
        "dataframe_split with index",
        "dataframe_records",
        "inputs records",
        "inputs columns",
        "instances columns",
        "csv",
        "csv quoted crlf",
        "json with charset",
        "no content type",
    ],
)
def test_each_format_gives_the_same_instances(body, content_type):
    assert decode_predict_body(body, content_type) == ROWS


def test_nested_arrays_pass_through_for_array_models():
    images = [[[[0.0, 1.0], [2.0, 3.0]]], [[[4.0, 5.0], [6.0, 7.0]]]]

    assert decode_predict_body(_json({"inputs": images}), JSON) == images
    assert decode_predict_body(_json({"instances": images}), JSON) == images


@pytest.mark.parametrize(
    "body, content_type",
    [
        (_json({"instances": []}), JSON),
        (_json({"dataframe_split": {"columns": [], "data": []}}), JSON),
        (b"x,city\n", CSV),
    ],
    ids=["instances", "dataframe_split", "csv"],
)
def test_a_body_without_instances_is_refused(body, content_type):
    with pytest.raises(PayloadError, match="at least one instance"):
        decode_predict_body(body, content_type)


def test_csv_text_column_keeps_text_and_numbers_stay_numbers():
    rows = decode_predict_body(b"code,v\n007,1\n,2\n", CSV)

    assert rows == [{"code": 7, "v": 1}, {"code": None, "v": 2}]
    assert decode_predict_body(b"name,v\nann,1\n,2\n", CSV) == [
        {"name": "ann", "v": 1},
        {"name": None, "v": 2},
    ]


@pytest.mark.parametrize(
    ("body", "content_type", "field", "reason"),
    [
        (b"", JSON, "body", "empty"),
        (b"{not json", JSON, "body", "not valid JSON"),
        (b"[1, 2]", JSON, "body", "expected an object"),
        (_json({}), JSON, "body", "got none"),
        (_json({"instances": [], "inputs": []}), JSON, "body", "instances and inputs"),
        (_json({"rows": []}), JSON, "rows", "unknown key"),
        (_json({"instances": 3}), JSON, "instances", "got a number"),
        (_json({"dataframe_split": []}), JSON, "dataframe_split", "got a list"),
        (
            _json(
                {
                    "dataframe_split": {
                        "columns": ["a", "b", "c", "d"],
                        "data": [[1, 2, 3, 4]] * 3 + [[1, 2, 3]],
                    }
                }
            ),
            JSON,
            "dataframe_split.data[3]",
            "expected 4 values, got 3",
        ),
        (
            _json({"dataframe_split": {"columns": ["a"], "data": [[1], {"a": 2}]}}),
            JSON,
            "dataframe_split.data[1]",
            "expected a list, got an object",
        ),
        (
            _json({"dataframe_split": {"data": [[1]]}}),
            JSON,
            "dataframe_split.columns",
            "got null",
        ),
        (
            _json({"dataframe_split": {"columns": ["a", "a"], "data": [[1, 2]]}}),
            JSON,
            "dataframe_split.columns[1]",
            "'a' appears more than once",
        ),
        (
            _json({"dataframe_split": {"columns": ["a", 2], "data": [[1, 2]]}}),
            JSON,
            "dataframe_split.columns[1]",
            "expected a column name",
        ),
        (
            _json({"dataframe_split": {"columns": ["a"], "data": 5}}),
            JSON,
            "dataframe_split.data",
            "expected a list of rows",
        ),
        (
            _json({"dataframe_split": {"columns": ["a"], "data": [[1]], "index": [1, 2]}}),
            JSON,
            "dataframe_split.index",
            "expected 1 labels",
        ),
        (
            _json({"dataframe_split": {"columns": ["a"], "data": [[1]], "dtypes": []}}),
            JSON,
            "dataframe_split.dtypes",
            "unknown key",
        ),
        (
            _json({"dataframe_records": [{"a": 1}, [1]]}),
            JSON,
            "dataframe_records[1]",
            "expected an object",
        ),
        (_json({"dataframe_records": {"a": [1]}}), JSON, "dataframe_records", "got an object"),
        (_json({"inputs": [{"a": 1}, 2]}), JSON, "inputs[1]", "got a number"),
        (_json({"inputs": {"a": [1, 2], "b": [3]}}), JSON, "inputs.b", "expected 2 values"),
        (_json({"inputs": {"a": [1], "b": 3}}), JSON, "inputs.b", "expected a list"),
        (b"a,b,c\n1,2,3\n4,5\n", CSV, "csv line 3", "expected 3 values, got 2"),
        (b"a,a\n1,2\n", CSV, "csv header", "'a' appears more than once"),
        (b"  \n", CSV, "csv", "empty"),
        (b"a,b\n1,2\n", "application/xml", "content-type", "application/xml is not accepted"),
    ],
)
def test_a_malformed_body_names_the_field(body, content_type, field, reason):
    with pytest.raises(PayloadError) as caught:
        decode_predict_body(body, content_type)

    error = caught.value
    assert error.field == field
    assert reason in error.reason
    # The service's handler answers it as a 422 naming the field.
    assert isinstance(error, InvalidInput)
    assert error.status_code == 422
    assert error.message == f"{field}: {error.reason}"
    assert error.details == [{"field": field, "reason": error.reason}]


def test_a_large_dataframe_split_decodes_quickly_and_exactly():
    columns = [f"c{i}" for i in range(8)]
    data = [
        [row * 0.5, f"k{row % 13}", row, None, True, row - 1.25, "x", row % 7]
        for row in range(10_000)
    ]
    body = _json({"dataframe_split": {"columns": columns, "data": data}})

    # The first call may pay for a full garbage collection of the test process's heap (torch,
    # the app), which the burst of new objects triggers; the second shows the decoding itself.
    first = time.process_time()
    decode_predict_body(body, JSON)
    first = time.process_time() - first
    start, cpu_start = time.perf_counter(), time.process_time()
    instances = decode_predict_body(body, JSON)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start

    print(
        f"dataframe_split of 10,000 rows x 8 columns ({len(body):,} bytes): "
        f"{elapsed * 1000:.1f} ms wall, {cpu * 1000:.1f} ms CPU "
        f"(first call {first * 1000:.1f} ms CPU)"
    )
    assert len(instances) == 10_000
    assert instances[0] == dict(zip(columns, data[0], strict=True))
    assert instances[9_999] == dict(zip(columns, data[9_999], strict=True))
    assert instances[1234]["c3"] is None


def test_a_large_csv_decodes_exactly():
    lines = ["a,b,c"] + [
        f"{i},{'' if i % 5 == 0 else f'k{i % 3}'},{i * 0.25}" for i in range(10_000)
    ]
    body = "\n".join(lines).encode()

    start = time.perf_counter()
    instances = decode_predict_body(body, CSV)
    elapsed = time.perf_counter() - start

    print(f"csv of 10,000 rows x 3 columns: {elapsed * 1000:.1f} ms")
    assert len(instances) == 10_000
    assert instances[5] == {"a": 5, "b": None, "c": 1.25}
    assert instances[7] == {"a": 7, "b": "k1", "c": 1.75}


def test_the_request_body_documents_every_shape():
    body = predict_request_body()["requestBody"]

    shapes = body["content"]["application/json"]["schema"]["oneOf"]
    assert [s["title"] for s in shapes] == [
        "instances",
        "dataframe_split",
        "dataframe_records",
        "inputs",
    ]
    assert "text/csv" in body["content"]
    for example in body["content"]["application/json"]["examples"].values():
        decoded = decode_predict_body(_json(example["value"]), JSON)
        assert decoded and all(isinstance(row, dict) for row in decoded)
    assert decode_predict_body(body["content"]["text/csv"]["example"].encode(), CSV)
