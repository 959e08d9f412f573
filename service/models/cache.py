"""In-process cache of loaded models, so only the first predict for a model reads the store.

Least recently used models leave first once the loaded weights pass a memory budget; the model
just loaded always stays, even alone over the budget, so a large model is still servable.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from engine.artifacts import MODEL_FILES
from engine.inference import Predictor
from service.core.store import Store
from service.models.batching import MicroBatcher
from service.models.tables import model_file_key


def weight_bytes(predictor: Predictor) -> int:
    """What a loaded model holds in memory: its parameters and buffers."""
    tensors = [*predictor.model.parameters(), *predictor.model.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


class _Loaded:
    def __init__(self, predictor: Predictor, batcher: MicroBatcher) -> None:
        self.predictor = predictor
        self.batcher = batcher
        self.size = weight_bytes(predictor)


class ModelCache:
    def __init__(
        self,
        store: Store,
        budget_bytes: int = 1 << 30,
        max_batch: int = 256,
        max_wait_ms: float = 0.0,
    ) -> None:
        self.store = store
        self.budget_bytes = budget_bytes
        self.max_batch = max_batch
        self.max_wait_ms = max_wait_ms
        self._models: OrderedDict[str, _Loaded] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}

    @property
    def loaded_bytes(self) -> int:
        return self._bytes

    def __contains__(self, model_id: str) -> bool:
        return model_id in self._models

    def get(self, model_id: str) -> Predictor:
        return self._load(model_id).predictor

    def batcher(self, model_id: str) -> MicroBatcher:
        """Where predict requests for the model meet to share forward passes."""
        return self._load(model_id).batcher

    def loaded_batcher(self, model_id: str) -> MicroBatcher | None:
        """The batcher of a model already in memory, else None: never reads the store, so the
        event loop may ask."""
        with self._lock:
            loaded = self._models.get(model_id)
            if loaded is not None:
                self._models.move_to_end(model_id)
                return loaded.batcher
        return None

    def _load(self, model_id: str) -> _Loaded:
        with self._lock:
            if model_id in self._models:
                self._models.move_to_end(model_id)
                return self._models[model_id]
            load_lock = self._loading.setdefault(model_id, threading.Lock())
        # Concurrent first requests for one model wait for a single load.
        with load_lock:
            with self._lock:
                if model_id in self._models:
                    return self._models[model_id]
            files = {
                name: self.store.read_bytes(model_file_key(model_id, name)) for name in MODEL_FILES
            }
            predictor = Predictor.from_files(files)
            loaded = _Loaded(predictor, MicroBatcher(predictor, self.max_batch, self.max_wait_ms))
            with self._lock:
                self._models[model_id] = loaded
                self._bytes += loaded.size
                self._loading.pop(model_id, None)
                while self._bytes > self.budget_bytes and len(self._models) > 1:
                    _, evicted = self._models.popitem(last=False)
                    self._bytes -= evicted.size
                    evicted.batcher.stop()
            return loaded
