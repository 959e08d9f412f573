"""What the predict path remembers of its lookups: trusted for a while, forgotten on a change."""

from __future__ import annotations

import pytest

from service.core import lookups
from service.core.lookups import RecentLookups


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1000.0]
    monkeypatch.setattr(lookups.time, "monotonic", lambda: now[0])
    return now


def test_an_answer_is_trusted_for_its_time_only(clock: list[float]) -> None:
    remembered = RecentLookups[str, str](ttl=1.0)
    remembered.put("key", "project-a", remembered.generation)
    clock[0] += 0.9
    assert remembered.get("key") == "project-a"
    clock[0] += 0.2
    assert remembered.get("key") is None


def test_a_clear_forgets_everything(clock: list[float]) -> None:
    remembered = RecentLookups[str, str](ttl=60)
    remembered.put("a", "1", remembered.generation)
    remembered.put("b", "2", remembered.generation)
    remembered.clear()
    assert remembered.get("a") is None and remembered.get("b") is None


def test_a_lookup_that_straddles_a_clear_is_not_remembered(clock: list[float]) -> None:
    # The alias moved while this lookup read the database: what it read may be the old one.
    remembered = RecentLookups[str, str](ttl=60)
    seen = remembered.generation
    remembered.clear()
    remembered.put("ref", "old-model", seen)
    assert remembered.get("ref") is None
    remembered.put("ref", "new-model", remembered.generation)
    assert remembered.get("ref") == "new-model"


def test_zero_time_remembers_nothing(clock: list[float]) -> None:
    remembered = RecentLookups[str, str](ttl=0)
    remembered.put("key", "project-a", remembered.generation)
    assert remembered.get("key") is None


def test_the_oldest_answer_leaves_when_full(clock: list[float]) -> None:
    remembered = RecentLookups[int, int](ttl=60, max_entries=3)
    for i in range(4):
        remembered.put(i, i * 10, remembered.generation)
    assert remembered.get(0) is None
    assert [remembered.get(i) for i in (1, 2, 3)] == [10, 20, 30]
