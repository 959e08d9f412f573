"""Ingest: an upload becomes canonical Parquet with a per-column summary, or a DataError."""

from __future__ import annotations

import io

import pyarrow.parquet as pq
import pytest

from engine.data import ingest
from engine.data.ingest import convert_to_parquet, detect_format
from engine.errors import DataError
from tests.sample_data import csv_bytes, mixed_classification, parquet_bytes


def _convert(data: bytes, fmt: str = "csv"):
    sink = io.BytesIO()
    summary = convert_to_parquet(io.BytesIO(data), fmt, sink)
    return summary, pq.read_table(io.BytesIO(sink.getvalue()))


def _by_name(summary):
    return {column.name: column for column in summary.columns}


def test_csv_to_parquet_keeps_rows_values_and_column_order():
    columns = {"zeta": [3, 1, 2], "alpha": ["a", "b", "c"], "mid": [0.5, 1.5, 2.5]}

    summary, table = _convert(csv_bytes(columns))

    assert summary.rows == 3
    assert table.num_rows == 3
    assert table.column_names == ["zeta", "alpha", "mid"]
    assert [c.name for c in summary.columns] == ["zeta", "alpha", "mid"]
    assert table.to_pydict() == columns


def test_missing_values_are_counted_per_column():
    data = mixed_classification(n=60)
    expected_gaps = sum(v is None for v in data["x2"])

    summary, _ = _convert(csv_bytes(data))

    missing = {c.name: c.missing for c in summary.columns}
    assert expected_gaps > 0
    assert missing == {"x1": 0, "x2": expected_gaps, "colour": 0, "label": 0}


def test_missing_counts_add_up_across_record_batches(monkeypatch):
    monkeypatch.setattr(ingest, "CSV_BLOCK_BYTES", 256)
    data = {
        "n": [None if i % 3 == 0 else i + 0.5 for i in range(300)],
        "s": [None if i % 5 == 0 else f"v{i}" for i in range(300)],
    }
    raw = csv_bytes(data)
    assert len(raw) > 4 * 256  # several blocks, so several batches

    summary, table = _convert(raw)

    assert summary.rows == 300
    assert table.num_rows == 300
    assert [c.missing for c in summary.columns] == [100, 60]


def test_empty_text_cell_counts_as_missing_not_as_an_empty_category():
    summary, table = _convert(b"colour,n\nred,1\n,2\nblue,\n")

    assert [c.missing for c in summary.columns] == [1, 1]
    assert table.column("colour").to_pylist() == ["red", None, "blue"]


def test_logical_types_are_numeric_categorical_boolean_and_datetime():
    raw = b"count,price,colour,flag,day\n1,2.5,red,true,2024-01-01\n2,3.5,blue,false,2024-01-02\n"

    summary, _ = _convert(raw)

    types = {name: column.type for name, column in _by_name(summary).items()}
    assert types == {
        "count": "numeric",
        "price": "numeric",
        "colour": "categorical",
        "flag": "boolean",
        "day": "datetime",
    }


def test_parquet_input_is_read_with_its_types():
    columns = {"a": [1.0, None, 3.0], "b": ["x", "y", None], "c": [True, False, True]}

    summary, table = _convert(parquet_bytes(columns), "parquet")

    assert summary.rows == 3
    assert table.to_pydict() == columns
    by_name = _by_name(summary)
    assert (by_name["a"].type, by_name["a"].missing) == ("numeric", 1)
    assert (by_name["b"].type, by_name["b"].missing) == ("categorical", 1)
    assert by_name["c"].type == "boolean"


def test_empty_file_raises_data_error():
    with pytest.raises(DataError):
        _convert(b"")


def test_header_only_csv_raises_data_error_about_rows():
    with pytest.raises(DataError, match="no data rows"):
        _convert(b"a,b,c\n")


def test_duplicate_header_names_raise_data_error_naming_the_column():
    with pytest.raises(DataError, match="'a'"):
        _convert(b"a,b,a\n1,2,3\n")


def test_empty_header_name_raises_data_error():
    with pytest.raises(DataError, match="empty name"):
        _convert(b"a,,c\n1,2,3\n")


def test_ragged_csv_raises_data_error():
    with pytest.raises(DataError, match="CSV"):
        _convert(b"a,b\n1,2\n3\n")


def test_corrupt_parquet_raises_data_error():
    with pytest.raises(DataError, match="Parquet"):
        _convert(b"PAR1" + b"\x00" * 64, "parquet")


def test_detect_format_recognises_parquet_by_magic_bytes():
    head = parquet_bytes({"a": [1]})[:8]

    assert detect_format(head, "upload.csv") == "parquet"
    assert detect_format(head, None) == "parquet"


def test_detect_format_defaults_to_csv():
    assert detect_format(b"a,b\n1,2\n", "data.csv") == "csv"
    assert detect_format(b"a,b\n1,2\n", None) == "csv"


@pytest.mark.parametrize("filename", ["data.parquet", "DATA.PQ"])
def test_parquet_name_with_non_parquet_bytes_raises(filename):
    with pytest.raises(DataError, match="not a Parquet file"):
        detect_format(b"a,b\n1,2\n", filename)
