"""The conversion of a text upload while it arrives: the pipe between receiver and parser, and
the profile taken on the way."""

from __future__ import annotations

from pathlib import Path

from engine.data.ingest.table import TableLimits
from engine.data.profile.table import profile_table
from service.core.store import Store
from service.datasets.live_ingest import _END, LiveConversion, _BytePipe
from service.datasets.tables import table_key
from tests.sample_data import csv_bytes, mixed_classification


def test_pipe_hands_on_chunks_as_they_came_and_ends_after_the_last() -> None:
    pipe = _BytePipe()
    pipe.put([b"ab", b"", b"cde"])
    pipe.put([b"f"])
    pipe.put(_END)

    assert pipe.read(2) == b"ab"
    assert pipe.read(2) == b"cd"  # a chunk is split, never joined to the next
    assert pipe.read(10) == b"e"
    assert pipe.read(-1) == b"f"
    assert pipe.read(5) == b""


def test_live_conversion_profiles_the_table_it_converts(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    key = table_key("ds_live")
    raw = csv_bytes(mixed_classification(n=120))
    live = LiveConversion(store, key, TableLimits())

    for start in range(0, len(raw), 100):  # as the receiver hands them in: lists of chunks
        live.feed([raw[start : start + 60], raw[start + 60 : start + 100]], "data.csv")
    summary = live.finish()
    profile = live.profiler.finish(store.path(key))

    assert summary is not None and summary.rows == profile.rows == 120
    expected = profile_table(store.path(key))
    assert [c.name for c in profile.columns] == [c.name for c in expected.columns]
    assert profile.duplicate_rows == expected.duplicate_rows
    assert [c.top_values for c in profile.columns] == [c.top_values for c in expected.columns]
    assert [c.missing for c in profile.columns] == [c.missing for c in expected.columns]
