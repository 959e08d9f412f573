"""The model cache: loaded once however many first requests arrive together, bounded by a
memory budget that counts weights, least recently used out first."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import orjson

from service.core.store import Store
from service.models.cache import ModelCache, weight_bytes
from service.models.serving import ServingService
from tests.conftest import Api, Backend


class CountingStore(Store):
    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.reads = 0
        self._lock = threading.Lock()

    def read_bytes(self, key: str) -> bytes:
        with self._lock:
            self.reads += 1
        return super().read_bytes(key)


def _second_model(api: Api, dataset_id: str, submit, run_job) -> str:
    job = submit(dataset_id, training={"epochs": 2}, model={"family": "mlp", "hidden": [64]})
    assert run_job(job["id"]) == "succeeded"
    return api.get(f"/v1/jobs/{job['id']}").json()["model_id"]


def test_concurrent_first_requests_load_a_model_once(
    backend: Backend, trained_model_id: str
) -> None:
    store = CountingStore(backend.settings.effective_store_url)
    cache = ModelCache(store)
    with ThreadPoolExecutor(8) as pool:
        predictors = list(pool.map(lambda _: cache.get(trained_model_id), range(16)))
    assert all(p is predictors[0] for p in predictors)
    reads_for_one_load = store.reads
    cache.get(trained_model_id)
    assert store.reads == reads_for_one_load  # the second request reads nothing


def test_the_budget_evicts_the_least_recently_used_model(
    backend: Backend, api: Api, dataset_id: str, trained_model_id: str, submit, run_job
) -> None:
    other_id = _second_model(api, dataset_id, submit, run_job)
    store = Store(backend.settings.effective_store_url)
    first = ModelCache(store).get(trained_model_id)
    cache = ModelCache(store, budget_bytes=weight_bytes(first) + 1)

    cache.get(trained_model_id)
    assert cache.loaded_bytes == weight_bytes(first)
    cache.get(other_id)
    # Both do not fit: the older one left, the one just loaded stays even if over budget.
    assert other_id in cache and trained_model_id not in cache
    assert cache.loaded_bytes == weight_bytes(cache.get(other_id))


def test_a_generous_budget_keeps_both(
    backend: Backend, api: Api, dataset_id: str, trained_model_id: str, submit, run_job
) -> None:
    other_id = _second_model(api, dataset_id, submit, run_job)
    cache = ModelCache(Store(backend.settings.effective_store_url))
    cache.get(trained_model_id)
    cache.get(other_id)
    assert trained_model_id in cache and other_id in cache


def test_a_first_predict_loads_its_model_off_the_event_loop(
    backend: Backend, trained_model_id: str
) -> None:
    class LoopWatchingStore(Store):
        read_on_the_loop = False

        def read_bytes(self, key: str) -> bytes:
            try:
                asyncio.get_running_loop()
                LoopWatchingStore.read_on_the_loop = True
            except RuntimeError:  # no loop in this thread: a worker thread
                pass
            return super().read_bytes(key)

    cache = ModelCache(LoopWatchingStore(backend.settings.effective_store_url))
    serving = ServingService(backend.app.state.session_factory, cache, backend.settings)

    async def model_id(project_id: str, ref: str) -> str:  # the registry is not under test
        return trained_model_id

    serving.model_id = model_id
    row = {"x1": 0.5, "x2": -1.0, "colour": "red"}
    answer = orjson.loads(asyncio.run(serving.predict("any", trained_model_id, [row])))
    cache.batcher(trained_model_id).stop()

    assert len(answer["predictions"]) == 1
    assert trained_model_id in cache
    assert not LoopWatchingStore.read_on_the_loop
