"""Predict from raw instances: check them, replay the fitted pipeline, run the network."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from engine.artifacts import load_model
from engine.errors import EngineError
from engine.pipeline import Pipeline
from engine.spec import Spec

# Forward passes of bounded size, so one request of many rows keeps memory flat.
FORWARD_ROWS = 4096


class Predictor:
    def __init__(self, spec: Spec, pipeline: Pipeline, model: torch.nn.Module) -> None:
        self.spec = spec
        self.pipeline = pipeline
        self.model = model.train(False)  # eval mode

    @classmethod
    def from_files(cls, files: Mapping[str, bytes]) -> Predictor:
        return cls(*load_model(files))

    @property
    def can_encode(self) -> bool:
        return callable(getattr(self.model, "encode", None))

    @torch.inference_mode()
    def predict(self, instances: Sequence[Any]) -> list[dict[str, Any]]:
        if not instances:
            return []
        inputs = torch.from_numpy(self.pipeline.inputs(instances))
        predictions: list[dict[str, Any]] = []
        for start in range(0, len(inputs), FORWARD_ROWS):
            chunk = inputs[start : start + FORWARD_ROWS]
            predictions += self.pipeline.predictions(self.model(chunk), chunk)
        return predictions

    @torch.inference_mode()
    def encode(self, instances: Sequence[Any]) -> list[list[float]]:
        """Embeddings from an autoencoder's encoder, one vector per instance."""
        if not self.can_encode:
            raise EngineError("this model has no encoder: train an autoencoder to get embeddings")
        inputs = torch.from_numpy(self.pipeline.inputs(instances))
        chunks = [
            self.model.encode(inputs[start : start + FORWARD_ROWS]).float().numpy()
            for start in range(0, len(inputs), FORWARD_ROWS)
        ]
        return np.concatenate(chunks).tolist() if chunks else []
