"""Ingest: an upload becomes canonical Parquet with a per-column summary, or a DataError."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.data import ingest
from engine.data.ingest import convert_to_parquet, pieces
from engine.data.ingest.formats import detect_format
from engine.data.ingest.table import ColumnTypeConflict, TableLimits, TableTooLarge
from engine.errors import DataError
from tests.sample_data import csv_bytes, mixed_classification, parquet_bytes


def _convert(data: bytes, fmt: str = "csv"):
    return _convert_with(data, None, fmt)


def _convert_with(data: bytes, column_types, fmt: str = "csv"):
    sink = io.BytesIO()
    summary = convert_to_parquet(io.BytesIO(data), fmt, sink, column_types=column_types)
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
    monkeypatch.setattr(pieces, "PIECE_BYTES", 256)
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
    with pytest.raises(DataError, match="the file is empty"):
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


def test_ragged_csv_names_the_line_and_the_field_counts():
    with pytest.raises(DataError, match="^line 3: expected 2 fields, found 1$"):
        _convert(b"a,b\n1,2\n3\n")


def test_ragged_row_far_into_the_file_names_its_line(monkeypatch):
    # Several pieces, so the line is counted across them.
    monkeypatch.setattr(pieces, "PIECE_BYTES", 64)
    raw = b"a,b,c\n" + b"1,2,3\n" * 200 + b"4,5,6,7\n" + b"1,2,3\n" * 10

    with pytest.raises(DataError, match="^line 202: expected 3 fields, found 4$"):
        _convert(raw)


def test_ragged_row_after_a_quoted_newline_names_the_line_it_starts_on():
    raw = b'a,b,c\n1,"two\nlines",3\n4,5,6\n7,8\n'

    with pytest.raises(DataError, match="^line 5: expected 3 fields, found 2$"):
        _convert(raw)


def test_invalid_utf8_names_the_line(monkeypatch):
    monkeypatch.setattr(pieces, "PIECE_BYTES", 64)
    raw = b"n,city\n" + b"1,Paris\n" * 30 + b"2,Orl\xe9ans\n" + b"3,Lyon\n"

    with pytest.raises(DataError, match="^line 32: .*not UTF-8"):
        _convert(raw)


def test_invalid_utf8_in_the_first_rows_names_line_and_column():
    with pytest.raises(DataError, match="^line 3: .*not UTF-8 text in column 'city'"):
        _convert(b"n,city\n1,Paris\n2,Orl\xe9ans\n")


def test_whitespace_only_file_is_empty():
    with pytest.raises(DataError, match="empty"):
        _convert(b"  \n\n")


def test_tsv_by_sniffing_and_by_name():
    raw = b"a\tb\tlabel\n1\t2.5\tx\n3\t4.5\ty\n"

    summary, table = _convert(raw)
    assert summary.source_format == "tsv"
    assert table.to_pydict() == {"a": [1, 3], "b": [2.5, 4.5], "label": ["x", "y"]}
    assert detect_format(raw[:8], "data.tsv") == "tsv"
    _, by_name = _convert(raw, "tsv")
    assert by_name.column_names == ["a", "b", "label"]


def test_semicolon_and_pipe_delimiters():
    for delimiter in (b";", b"|"):
        raw = b"city;n;note\nParis;1;a, b\nLyon;2;c\n".replace(b";", delimiter)

        summary, table = _convert(raw)

        assert summary.source_format == "csv"
        assert table.to_pydict() == {"city": ["Paris", "Lyon"], "n": [1, 2], "note": ["a, b", "c"]}


def test_utf8_bom_is_not_part_of_the_first_column_name():
    _, table = _convert(b"\xef\xbb\xbfname,n\nZo\xc3\xab,1\n")

    assert table.column_names == ["name", "n"]
    assert table.column("name").to_pylist() == ["Zo\u00eb"]


def test_quoted_fields_keep_embedded_delimiters_quotes_and_newlines(monkeypatch):
    monkeypatch.setattr(pieces, "PIECE_BYTES", 32)
    row = b'1,"Smith, John","said ""hi""\nthen left"\n'
    raw = b"id,name,note\n" + row * 20

    summary, table = _convert(raw)

    assert summary.rows == 20
    assert set(table.column("name").to_pylist()) == {"Smith, John"}
    assert set(table.column("note").to_pylist()) == {'said "hi"\nthen left'}


def test_headerless_numeric_csv_gets_generated_names():
    summary, table = _convert(b"1,2.5,3\n4,5.5,6\n")

    assert summary.rows == 2
    assert table.column_names == ["column_1", "column_2", "column_3"]
    assert table.column("column_2").to_pylist() == [2.5, 5.5]


def test_numeric_looking_header_over_text_rows_is_still_a_header():
    _, table = _convert(b"2023,2024\nlow,high\n")

    assert table.column_names == ["2023", "2024"]


def test_jsonl_by_content_and_by_name():
    raw = b'{"a": 1, "b": "x"}\n\n{"a": 2, "b": null}\n'
    assert detect_format(raw[:8], "upload.txt") == "jsonl"
    assert detect_format(b"a,b\n", "rows.ndjson") == "jsonl"

    summary, table = _convert(raw, "jsonl")

    assert summary.source_format == "jsonl"
    assert table.to_pydict() == {"a": [1, 2], "b": ["x", None]}
    assert [c.missing for c in summary.columns] == [0, 1]


def test_jsonl_across_pieces_keeps_the_first_pieces_types(monkeypatch):
    monkeypatch.setattr(pieces, "PIECE_BYTES", 64)
    raw = b"".join(b'{"n": %d, "s": "v%d"}\n' % (i, i) for i in range(100))

    summary, table = _convert(raw, "jsonl")

    assert summary.rows == 100
    assert table.column("n").to_pylist() == list(range(100))


def test_jsonl_malformed_line_is_named():
    raw = b'{"a": 1}\n{"a": 2}\n{"a": 3\n{"a": 4}\n'

    with pytest.raises(DataError, match="^line 3: not valid JSON"):
        _convert(raw, "jsonl")


def test_jsonl_field_missing_from_the_first_rows_is_named(monkeypatch):
    monkeypatch.setattr(pieces, "PIECE_BYTES", 64)
    raw = b'{"a": 1}\n' * 20 + b'{"a": 2, "extra": 1}\n'

    with pytest.raises(DataError, match="^line 21: field 'extra'"):
        _convert(raw, "jsonl")


def test_jsonl_nested_values_are_refused():
    with pytest.raises(DataError, match="'tags'.*nested"):
        _convert(b'{"a": 1, "tags": [1, 2]}\n', "jsonl")


def test_integer_column_meeting_a_decimal_later_reports_a_widening(monkeypatch):
    monkeypatch.setattr(pieces, "PIECE_BYTES", 64)
    raw = b"n,s\n" + b"1,a\n" * 40 + b"2.5,b\n"

    with pytest.raises(ColumnTypeConflict, match="^line 42: column 'n'") as caught:
        _convert(raw)
    assert caught.value.column == "n" and caught.value.widened == pa.float64()

    summary, table = _convert_with(raw, {"n": pa.float64()})
    assert summary.rows == 41
    assert table.column("n").to_pylist()[-1] == 2.5


def test_row_and_column_limits():
    raw = csv_bytes({"a": list(range(10)), "b": list(range(10)), "c": list(range(10))})

    with pytest.raises(TableTooLarge, match="rows"):
        convert_to_parquet(io.BytesIO(raw), "csv", io.BytesIO(), TableLimits(max_rows=9))
    with pytest.raises(TableTooLarge, match="columns"):
        convert_to_parquet(io.BytesIO(raw), "csv", io.BytesIO(), TableLimits(max_columns=2))
    summary = convert_to_parquet(
        io.BytesIO(raw), "csv", io.BytesIO(), TableLimits(max_rows=10, max_columns=3)
    )
    assert summary.rows == 10


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


def test_column_empty_in_the_first_piece_reports_the_type_it_has_later(monkeypatch):
    monkeypatch.setattr(pieces, "PIECE_BYTES", 64)
    raw = b"n,sparse\n" + b"1,\n" * 40 + b"2,7\n"

    with pytest.raises(ColumnTypeConflict, match="^line 42: column 'sparse'") as caught:
        _convert(raw)

    summary, table = _convert_with(raw, {"sparse": caught.value.widened})
    assert table.column("sparse").to_pylist()[-2:] == [None, 7]
    assert summary.columns[1].missing == 40


# --- blocks: the pieces after the first are parsed in blocks, side by side ---------------------


def _small_blocks(monkeypatch) -> None:
    monkeypatch.setattr(pieces, "PIECE_BYTES", 1024)
    monkeypatch.setattr(pieces, "BLOCK_BYTES", 64)


def test_blocks_keep_rows_in_order_and_quoted_newlines_whole(monkeypatch):
    _small_blocks(monkeypatch)
    notes = [f"line {i}\nand more, {i}" if i % 3 else f"plain {i}" for i in range(300)]
    raw = csv_bytes({"i": list(range(300)), "note": notes})

    summary, table = _convert(raw)

    assert summary.rows == 300
    assert table.column("i").to_pylist() == list(range(300))
    assert table.column("note").to_pylist() == notes


def test_blocks_are_cut_only_after_whole_records(monkeypatch):
    monkeypatch.setattr(pieces, "BLOCK_BYTES", 16)
    buffer = b'a,"x\ny\nz"\n' * 20 + b'b,"cut off\n'

    spans = pieces._record_blocks(buffer, quoted=True, at_end=False)

    assert spans[0][0] == 0 and len(spans) > 1
    assert all(end == start for (_, end), (start, _) in zip(spans, spans[1:], strict=False))
    for _, end in spans:
        assert buffer[end - 1 : end] == b"\n" and buffer.count(b'"', 0, end) % 2 == 0
    assert spans[-1][1] == len(buffer) - len(b'b,"cut off\n')  # the open record waits


def test_a_ragged_row_in_a_later_block_names_its_line(monkeypatch):
    _small_blocks(monkeypatch)
    raw = b"a,b,c\n" + b"1,2,3\n" * 300 + b"4,5,6,7\n" + b"1,2,3\n" * 10

    with pytest.raises(DataError, match="^line 302: expected 3 fields, found 4$"):
        _convert(raw)


def test_a_late_decimal_in_a_later_block_names_its_line(monkeypatch):
    _small_blocks(monkeypatch)
    raw = b"n,s\n" + b"1,a\n" * 300 + b"2.5,b\n" + b"3,c\n" * 10

    with pytest.raises(ColumnTypeConflict, match="^line 302: column 'n'"):
        _convert(raw)


def test_on_piece_sees_every_row_in_order(monkeypatch):
    _small_blocks(monkeypatch)
    data = mixed_classification(n=200)
    seen: list[pa.Table] = []
    sink = io.BytesIO()

    convert_to_parquet(io.BytesIO(csv_bytes(data)), "csv", sink, on_piece=seen.append)

    assert len(seen) > 1
    assert pa.concat_tables(seen).equals(pq.read_table(io.BytesIO(sink.getvalue())))


def test_pieces_are_gathered_into_fewer_row_groups(monkeypatch):
    monkeypatch.setattr(pieces, "PIECE_BYTES", 256)
    monkeypatch.setattr(ingest, "ROW_GROUP_BYTES", 2048)
    seen: list[pa.Table] = []
    sink = io.BytesIO()

    convert_to_parquet(
        io.BytesIO(csv_bytes(mixed_classification(n=300))), "csv", sink, on_piece=seen.append
    )

    groups = pq.ParquetFile(io.BytesIO(sink.getvalue())).metadata.num_row_groups
    assert 1 < groups < len(seen)
