"""Profile: statistics checked against numpy, warnings on columns built to trigger them."""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import asdict

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.data.ingest import convert_to_parquet, pieces
from engine.data.profile.results import TableProfile, table_profile_from_dict
from engine.data.profile.table import TableProfiler, profile_table
from engine.data.profile.target import profile_target
from tests.sample_data import csv_bytes


def parquet(columns: dict[str, list], row_group_size: int | None = None) -> io.BytesIO:
    sink = io.BytesIO()
    pq.write_table(pa.table(columns), sink, row_group_size=row_group_size)
    sink.seek(0)
    return sink


def by_name(profile):
    return {c.name: c for c in profile.columns}


def codes(profile) -> set[tuple[str | None, str]]:
    return {(w.column, w.code) for w in profile.warnings}


def test_numeric_statistics_match_numpy_across_row_groups():
    rng = np.random.default_rng(0)
    values = rng.normal(10, 3, size=1000)
    column = [None if i % 10 == 0 else float(v) for i, v in enumerate(values)]
    present = np.array([v for v in column if v is not None])

    profile = profile_table(parquet({"x": column}, row_group_size=128))

    x = by_name(profile)["x"]
    assert (x.type, x.missing, x.unique) == ("numeric", 100, 900)
    stats = x.numeric
    assert stats.min == present.min() and stats.max == present.max()
    assert stats.mean == pytest.approx(present.mean())
    assert stats.std == pytest.approx(present.std(ddof=1))
    expected = np.quantile(present, [0.05, 0.25, 0.5, 0.75, 0.95])
    assert list(stats.quantiles.values()) == pytest.approx(expected)
    counts, edges = np.histogram(present, bins=20)
    assert stats.histogram.counts == counts.tolist()
    assert stats.histogram.edges == pytest.approx(edges.tolist())


def test_categorical_boolean_text_and_datetime_columns():
    n = 60
    columns = {
        "colour": [["red", "green", "blue"][i % 3] if i % 4 else "red" for i in range(n)],
        "flag": [i % 3 == 0 for i in range(n)],
        "note": [f"free text number {i} that nobody repeats" for i in range(n)],
        "day": [dt.date(2024, 1, 1) + dt.timedelta(days=i % 7) for i in range(n)],
    }

    columns_profile = by_name(profile_table(parquet(columns)))

    colour = columns_profile["colour"]
    assert (colour.type, colour.unique) == ("categorical", 3)
    expected = {v: columns["colour"].count(v) for v in ("red", "green", "blue")}
    assert {t.value: t.count for t in colour.top_values} == expected
    assert colour.top_values[0].value == "red"  # the most frequent first
    flag = columns_profile["flag"]
    assert flag.type == "boolean"
    assert [(t.value, t.count) for t in flag.top_values] == [(False, 40), (True, 20)]
    assert columns_profile["note"].type == "text"
    assert columns_profile["note"].top_values is None
    day = columns_profile["day"]
    assert (day.type, day.unique) == ("datetime", 7)
    assert (day.datetime.min, day.datetime.max) == ("2024-01-01", "2024-01-07")


def test_duplicate_rows_are_counted_over_every_column():
    columns = {
        "a": [1, 1, 1, 2, 2, None, None],
        "b": ["x", "x", "y", "x", "x", None, None],
        "c": [0.5, 0.5, 0.5, 0.5, 0.5, 1.0, 1.0],
    }

    profile = profile_table(parquet(columns, row_group_size=3))

    # (1, x, .5) twice, (2, x, .5) twice, (None, None, 1.0) twice: three repeats.
    assert profile.rows == 7
    assert profile.duplicate_rows == 3


def test_warnings_fire_on_built_columns_and_not_on_ordinary_ones():
    n = 200
    rng = np.random.default_rng(1)
    columns = {
        "ordinary": rng.normal(size=n).tolist(),
        "colour": [["red", "green"][i % 2] for i in range(n)],
        "same": [7] * n,
        "gappy": [None if i % 4 else 1.0 for i in range(n)],
        "user": [f"u{i}" for i in range(n)],
    }

    warnings = codes(profile_table(parquet(columns)))

    assert warnings == {
        ("same", "constant"),
        ("gappy", "many_missing"),
        ("gappy", "constant"),
        ("user", "high_cardinality"),
    }


def test_profile_survives_its_json_form():
    profile = profile_table(parquet({"a": [1.0, 2.0, 2.0], "b": ["x", "y", "y"]}))

    assert table_profile_from_dict(asdict(profile)) == profile


def classification_columns(n: int = 400) -> dict[str, list]:
    rng = np.random.default_rng(2)
    label = rng.choice(["yes", "no"], size=n, p=[0.25, 0.75])
    return {
        "signal": (np.where(label == "yes", 1.0, -1.0) + rng.normal(size=n)).tolist(),
        "noise": rng.normal(size=n).tolist(),
        "colour": rng.choice(["red", "green", "blue"], size=n).tolist(),
        # Derived from the label: what a model could not know at prediction time.
        "outcome_code": [f"code_{v}_{i % 2}" for i, v in enumerate(label)],
        "label": label.tolist(),
    }


def test_target_class_balance_and_leakage_of_a_derived_category():
    columns = classification_columns()
    source = parquet(columns)
    table = profile_table(source)

    target = profile_target(source, table, "label")

    assert target.task == "classification"
    assert {c.value: c.count for c in target.classes} == {
        v: columns["label"].count(v) for v in ("yes", "no")
    }
    scores = {f.column: f.score for f in target.features}
    assert "label" not in scores
    assert scores["signal"] > scores["noise"]
    leaks = {w.column for w in target.warnings if w.code == "leakage_suspect"}
    assert leaks == {"outcome_code"}


def test_numeric_target_correlations_match_numpy_and_flag_a_copy():
    rng = np.random.default_rng(3)
    x = rng.normal(size=300)
    y = 2 * x + rng.normal(size=300)
    columns = {"x": x.tolist(), "y_again": (y * 100 + 1).tolist(), "y": y.tolist()}
    source = parquet(columns)

    target = profile_target(source, profile_table(source), "y")

    assert target.task == "regression"
    assert target.distribution.mean == pytest.approx(y.mean())
    scores = {f.column: (f.method, f.score) for f in target.features}
    assert scores["x"] == ("pearson", pytest.approx(np.corrcoef(x, y)[0, 1]))
    assert {w.column for w in target.warnings} == {"y_again"}


def test_target_features_use_a_bounded_sample():
    columns = classification_columns(n=400)
    source = parquet(columns)

    target = profile_target(source, profile_table(source), "label", sample_rows=100)

    assert target.sample_rows == 100
    assert sum(c.count for c in target.classes) == 400  # class counts use every row


# --- taken on the way ---------------------------------------------------------------------------


def profile_on_the_way(raw: bytes, source_of) -> TableProfile:
    """Convert the CSV `raw` in small pieces, profiling them as they go by, then finish the
    profile from `source_of(parquet bytes)`."""
    sink, profiler = io.BytesIO(), TableProfiler()
    convert_to_parquet(io.BytesIO(raw), "csv", sink, on_piece=profiler.add)
    return profiler.finish(source_of(sink.getvalue()))


def assert_same_profile(got: TableProfile, expected: TableProfile) -> None:
    """Equal, but the mean and spread: summed in other orders, they may differ in rounding."""
    got_columns, expected_columns = by_name(got), by_name(expected)
    for name, column in expected_columns.items():
        other = got_columns[name]
        if column.numeric is not None:
            assert other.numeric.mean == pytest.approx(column.numeric.mean, rel=1e-12)
            assert other.numeric.std == pytest.approx(column.numeric.std, rel=1e-12)
            other.numeric.mean, other.numeric.std = column.numeric.mean, column.numeric.std
    assert asdict(got) == asdict(expected)


def mixed_columns(n: int = 600) -> dict[str, list]:
    rng = np.random.default_rng(3)
    return {
        "x": [None if i % 7 == 0 else float(v) for i, v in enumerate(rng.normal(size=n))],
        "k": rng.integers(0, 4, size=n).tolist(),
        "colour": [None if i % 11 == 0 else ["red", "green", "blue"][i % 3] for i in range(n)],
        "flag": [bool(v) for v in rng.random(n) < 0.3],
        "day": [dt.date(2024, 1, 1) + dt.timedelta(days=i % 9) for i in range(n)],
        "user": [f"u{i % 250}" for i in range(n)],
    }


def test_profile_taken_while_converting_is_the_profile_of_the_stored_file(monkeypatch):
    monkeypatch.setattr(pieces, "PIECE_BYTES", 2048)  # many pieces, so many row groups
    raw = csv_bytes(mixed_columns())

    on_the_way = profile_on_the_way(raw, io.BytesIO)

    sink = io.BytesIO()
    convert_to_parquet(io.BytesIO(raw), "csv", sink)
    assert_same_profile(on_the_way, profile_table(io.BytesIO(sink.getvalue())))


def test_profile_finished_from_a_path_is_the_one_from_a_file_object(monkeypatch, tmp_path):
    monkeypatch.setattr(pieces, "PIECE_BYTES", 2048)
    raw = csv_bytes(mixed_columns())

    def saved(data: bytes) -> str:
        path = tmp_path / "table.parquet"
        path.write_bytes(data)
        return str(path)

    assert profile_on_the_way(raw, saved) == profile_on_the_way(raw, io.BytesIO)


def test_duplicates_count_every_column_however_it_is_hashed(monkeypatch):
    # Numbers are hashed on the way, text from the file: a row repeats only if both repeat.
    monkeypatch.setattr(pieces, "PIECE_BYTES", 64)
    raw = csv_bytes({"n": [1, 1, 1, 2, 2, 2] * 10, "s": ["a", "a", "b", "a", "a", "b"] * 10})

    profile = profile_on_the_way(raw, io.BytesIO)

    assert (profile.rows, profile.duplicate_rows) == (60, 56)
