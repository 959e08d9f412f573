"""Predict from raw instances: check them, replay the fitted pipeline, run the network."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from engine.artifacts import load_model
from engine.errors import EngineError
from engine.pipeline import ArrayPipeline, Pipeline, WindowPipeline
from engine.spec import Spec

# Forward passes of bounded size, so one request of many rows keeps memory flat.
FORWARD_ROWS = 4096

# Layers that hand their input on unchanged in eval mode.
EVAL_IDENTITIES = (
    nn.Identity,
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.FeatureAlphaDropout,
)


class Predictor:
    def __init__(self, spec: Spec, pipeline: Pipeline, model: torch.nn.Module) -> None:
        self.spec = spec
        self.pipeline = pipeline
        self.model = model.train(False)  # eval mode
        # What predict and encode run: the same weights, minus the layers that do nothing.
        self.network = without_eval_identities(self.model)

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
            predictions += self.pipeline.predictions(self.network(chunk), chunk)
        return predictions

    @torch.inference_mode()
    def predict_stored(self, x: np.ndarray) -> list[dict[str, Any]]:
        """Predictions for inputs as a dataset stores them, not as JSON: arrays
        [N, *source_shape] for array models, raw windows [N, window, C] for forecasting."""
        if isinstance(self.pipeline, ArrayPipeline):
            inputs = torch.from_numpy(self.pipeline.preprocessor.transform(x))
        elif isinstance(self.pipeline, WindowPipeline):
            inputs = torch.from_numpy(self.pipeline.scaler.transform(x.astype(np.float32)))
        else:
            raise EngineError("table models predict from rows: use predict")
        predictions: list[dict[str, Any]] = []
        for start in range(0, len(inputs), FORWARD_ROWS):
            chunk = inputs[start : start + FORWARD_ROWS]
            predictions += self.pipeline.predictions(self.network(chunk), chunk)
        return predictions

    @torch.inference_mode()
    def encode(self, instances: Sequence[Any]) -> list[list[float]]:
        """Embeddings from an autoencoder's encoder, one vector per instance."""
        if not self.can_encode:
            raise EngineError("this model has no encoder: train an autoencoder to get embeddings")
        inputs = torch.from_numpy(self.pipeline.inputs(instances))
        chunks = [
            self.network.encode(inputs[start : start + FORWARD_ROWS]).float().numpy()
            for start in range(0, len(inputs), FORWARD_ROWS)
        ]
        return np.concatenate(chunks).tolist() if chunks else []


def without_eval_identities(module: nn.Module) -> nn.Module:
    """`module` in eval mode with its sequential blocks' identity layers (dropout, `Identity`)
    left out, sharing its weights; `module` itself is left as it is. A one-row predict of the
    default MLP spends a tenth of its forward pass calling its two dropout layers."""
    lean = {
        name: child if child is None else without_eval_identities(child)
        for name, child in module._modules.items()
    }
    if type(module).forward is nn.Sequential.forward:
        lean = {name: c for name, c in lean.items() if not isinstance(c, EVAL_IDENTITIES)}
    if lean.keys() == module._modules.keys() and all(
        lean[name] is child for name, child in module._modules.items()
    ):
        return module
    clone = copy.copy(module)
    clone._modules = lean
    return clone
