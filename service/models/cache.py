"""In-process cache of loaded models, so only the first predict for a model reads the store."""

from __future__ import annotations

import threading
from collections import OrderedDict

from engine.artifacts import MODEL_FILES
from engine.inference import Predictor
from service.core.store import Store
from service.models.tables import model_file_key


class ModelCache:
    def __init__(self, store: Store, max_models: int = 32) -> None:
        self.store = store
        self.max_models = max_models
        self._models: OrderedDict[str, Predictor] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}

    def get(self, model_id: str) -> Predictor:
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
            with self._lock:
                self._models[model_id] = predictor
                self._loading.pop(model_id, None)
                while len(self._models) > self.max_models:
                    self._models.popitem(last=False)
            return predictor
