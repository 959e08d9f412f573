"""What the predict path remembers of its lookups: trusted for a while, forgotten on a change."""

from __future__ import annotations

import asyncio

import pytest

from service.core import lookups
from service.core.lookups import RecentLookups


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1000.0]
    monkeypatch.setattr(lookups, "monotonic", lambda: now[0])
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


def test_concurrent_misses_share_one_lookup(clock: list[float]) -> None:
    remembered = RecentLookups[str, str](ttl=60)
    calls = []

    async def look_up() -> str:
        calls.append(1)
        await asyncio.sleep(0.01)
        return "project-a"

    async def many() -> list[str]:
        return await asyncio.gather(*(remembered.remembered("key", look_up) for _ in range(20)))

    assert asyncio.run(many()) == ["project-a"] * 20
    assert len(calls) == 1
    assert remembered.get("key") == "project-a"


def test_a_failed_lookup_fails_every_waiter_and_is_not_remembered(clock: list[float]) -> None:
    remembered = RecentLookups[str, str](ttl=60)

    async def look_up() -> str:
        await asyncio.sleep(0.01)
        raise LookupError("no such key")

    async def many() -> list:
        calls = (remembered.remembered("key", look_up) for _ in range(3))
        return await asyncio.gather(*calls, return_exceptions=True)

    assert all(isinstance(r, LookupError) for r in asyncio.run(many()))
    assert remembered.get("key") is None


def test_a_request_after_a_clear_does_not_join_an_older_lookup(clock: list[float]) -> None:
    remembered = RecentLookups[str, str](ttl=60)
    answers = iter(["before the change", "after the change"])

    async def look_up() -> str:
        answer = next(answers)
        await asyncio.sleep(0.01)
        return answer

    async def straddle() -> tuple[str, str]:
        first = asyncio.ensure_future(remembered.remembered("ref", look_up))
        await asyncio.sleep(0)  # the first lookup is under way
        remembered.clear()  # the alias moves
        second = await remembered.remembered("ref", look_up)
        return await first, second

    assert asyncio.run(straddle()) == ("before the change", "after the change")
    assert remembered.get("ref") == "after the change"


def test_with_the_cache_off_every_request_looks_up(clock: list[float]) -> None:
    remembered = RecentLookups[str, int](ttl=0)
    calls = []

    async def look_up() -> int:
        calls.append(1)
        await asyncio.sleep(0.01)
        return len(calls)

    async def many() -> list[int]:
        return await asyncio.gather(*(remembered.remembered("key", look_up) for _ in range(3)))

    asyncio.run(many())
    assert len(calls) == 3
