"""Micro-batching: concurrent callers share forward passes and each gets its own rows back;
one caller's bad row is its own 422, not its neighbours'."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from engine.errors import InvalidInstances
from service.core.store import Store
from service.models.batching import MicroBatcher
from service.models.cache import ModelCache
from tests.conftest import Api, Backend
from tests.sample_data import mixed_classification

ROWS = mixed_classification(n=64, seed=9)
INSTANCES = [
    {"x1": a, "x2": b, "colour": c}
    for a, b, c in zip(ROWS["x1"], ROWS["x2"], ROWS["colour"], strict=True)
]


def assert_same_predictions(got: list[dict], expected: list[dict]) -> None:
    # A batch runs other matrix kernels than a single row: equal to rounding, not to the bit.
    assert [p["label"] for p in got] == [p["label"] for p in expected]
    for g, e in zip(got, expected, strict=True):
        assert g["probabilities"] == pytest.approx(e["probabilities"], abs=1e-6)


class CountingPredictor:
    """A predictor that records the size of every forward pass it is asked for."""

    def __init__(self, predictor) -> None:
        self.predictor = predictor
        self.calls: list[int] = []
        self.gate = threading.Event()

    def predict(self, instances):
        self.gate.wait(5)  # hold the first pass so the others queue up behind it
        self.calls.append(len(instances))
        return self.predictor.predict(instances)


@pytest.fixture
def predictor(backend: Backend, trained_model_id: str):
    """The trained model, loaded as the service loads it."""
    return ModelCache(Store(backend.settings.effective_store_url)).get(trained_model_id)


def one_row_each_queued_behind_the_gate(
    batcher: MicroBatcher, counting: CountingPredictor, rows: list[dict]
) -> list[list[dict]]:
    """Each row as its own request, all sent while the first forward pass is held; the answers
    once the gate opens. Stops the batcher."""
    with ThreadPoolExecutor(len(rows)) as pool:
        futures = [pool.submit(asyncio.run, batcher.predict_async([row])) for row in rows]
        threading.Timer(0.3, counting.gate.set).start()
        results = [f.result(timeout=10) for f in futures]
    batcher.stop()
    return results


def test_queued_requests_share_one_forward_pass_and_get_their_own_rows(predictor) -> None:
    expected = [predictor.predict([row])[0] for row in INSTANCES[:16]]
    counting = CountingPredictor(predictor)
    batcher = MicroBatcher(counting, max_batch=256, max_wait_ms=0)
    results = one_row_each_queued_behind_the_gate(batcher, counting, INSTANCES[:16])
    assert_same_predictions([r[0] for r in results], expected)
    assert len(counting.calls) < 16 and sum(counting.calls) == 16


def test_a_bad_row_fails_only_its_own_request(predictor) -> None:
    counting = CountingPredictor(predictor)
    batcher = MicroBatcher(counting, max_batch=256, max_wait_ms=0)
    bad = [{"x1": "not a number", "x2": 1.0, "colour": "red"}]
    with ThreadPoolExecutor(4) as pool:
        good = [pool.submit(asyncio.run, batcher.predict_async([row])) for row in INSTANCES[:3]]
        wrong = pool.submit(asyncio.run, batcher.predict_async(bad))
        threading.Timer(0.3, counting.gate.set).start()
        assert all(len(f.result(timeout=10)) == 1 for f in good)
        with pytest.raises(InvalidInstances) as caught:
            wrong.result(timeout=10)
    batcher.stop()
    assert caught.value.problems[0]["field"] == "instances[0].x1"


def test_concurrent_predicts_over_http_agree_with_single_ones(
    api: Api, trained_model_id: str
) -> None:
    url = f"/v1/models/{trained_model_id}/predict"
    alone = [api.post(url, json={"instances": [row]}).json()["predictions"][0] for row in INSTANCES]
    with ThreadPoolExecutor(8) as pool:
        together = list(
            pool.map(lambda row: api.post(url, json={"instances": [row]}).json(), INSTANCES)
        )
    assert_same_predictions([r["predictions"][0] for r in together], alone)


def test_a_caller_that_went_away_gets_no_forward_pass(predictor) -> None:
    counting = CountingPredictor(predictor)
    batcher = MicroBatcher(counting, max_batch=256, max_wait_ms=0)

    async def callers():
        first = asyncio.ensure_future(batcher.predict_async(INSTANCES[:1]))  # held at the gate
        await asyncio.sleep(0.2)
        gone = asyncio.ensure_future(batcher.predict_async(INSTANCES[1:3]))
        kept = asyncio.ensure_future(batcher.predict_async(INSTANCES[3:4]))
        await asyncio.sleep(0.05)
        gone.cancel()
        counting.gate.set()
        return await first, await kept, gone

    first, kept, gone = asyncio.run(callers())
    batcher.stop()
    assert gone.cancelled()
    assert len(first) == 1 and len(kept) == 1
    # The two rows of the cancelled request were never computed.
    assert counting.calls == [1, 1]


def test_a_forward_pass_holds_at_most_max_batch_rows(predictor) -> None:
    counting = CountingPredictor(predictor)
    batcher = MicroBatcher(counting, max_batch=4, max_wait_ms=0)
    results = one_row_each_queued_behind_the_gate(batcher, counting, INSTANCES[:10])
    assert all(len(r) == 1 for r in results)
    assert max(counting.calls) <= 4 and sum(counting.calls) == 10


@pytest.mark.parametrize("max_wait_ms, passes", [(0, [1, 1]), (500, [2])])
def test_max_wait_gathers_a_request_that_arrives_within_it(
    predictor, max_wait_ms: float, passes: list[int]
) -> None:
    counting = CountingPredictor(predictor)
    counting.gate.set()  # nothing held: only the wait can gather
    batcher = MicroBatcher(counting, max_batch=256, max_wait_ms=max_wait_ms)

    async def two_callers():
        first = asyncio.ensure_future(batcher.predict_async(INSTANCES[:1]))
        await asyncio.sleep(0.1)
        second = asyncio.ensure_future(batcher.predict_async(INSTANCES[1:2]))
        return await first, await second

    first, second = asyncio.run(two_callers())
    batcher.stop()
    assert len(first) == 1 and len(second) == 1
    assert counting.calls == passes
