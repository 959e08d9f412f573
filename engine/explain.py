"""Explanations of single predictions: how much each input moved the model's output, by
captum's integrated gradients, from a baseline input to the instance.

- The baseline is the model's own preprocessing, so it needs nothing stored beside it: a table
  row whose every column is missing (each number takes its training fill, the median or mean
  the imputer learned; each category its fill, else the unseen encoding; missing-value flags
  0), and for arrays and forecasting windows the all-zero input after standardisation, which
  is each channel's training mean.
- The output explained is the logit of the predicted class (or of a requested `target`
  class) for classification, and the model's output in its standardised units for regression
  and forecasting (`target` then picks one output, 1-based: a forecast's step ahead). The
  attributions of an instance add up to output(instance) - output(baseline), less the
  approximation error `convergence_delta`.
- Tables are answered per raw column: a one-hot block, a bin block, a missing flag and an
  embedded category's vector are summed back to the column they came from (embedded columns
  are attributed in the embedding space, after the lookup, since a category code has no
  gradient). Sequences and forecasting windows are answered per time step (and per step and
  channel), vectors per position, images as a saliency map [H, W] (summed over channels).
Autoencoders and token-code models (a first `embedding` layer reading array codes) are not
explained: `NotExplainable`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from captum.attr import IntegratedGradients
from torch import nn

from engine.data.preprocess.encoding import CategoricalFeature, NumericFeature
from engine.errors import EngineError
from engine.inference import Predictor
from engine.models.tabular import InputEmbeddings
from engine.pipeline import ArrayPipeline, TablePipeline, WindowPipeline

DEFAULT_STEPS = 32
MAX_STEPS = 256
MAX_INSTANCES = 32
# Integrated gradients runs n_steps scaled copies of each instance; at most this many input
# values go through one forward and backward pass.
PASS_ELEMENTS = 1 << 22
METHOD = "integrated_gradients"


class NotExplainable(EngineError):
    """The model's kind has no explanation here (an autoencoder, token codes)."""

    code = "not_explainable"


class InvalidTarget(EngineError):
    """`target` names no class (or output) of the model."""

    code = "invalid_target"

    def __init__(self, reason: str) -> None:
        super().__init__(f"target: {reason}")
        self.field = "target"
        self.reason = reason


def explain(
    predictor: Predictor,
    instances: Sequence[Any],
    target: Any = None,
    n_steps: int = DEFAULT_STEPS,
) -> dict[str, Any]:
    """{"method", "n_steps", "baseline", "explanations": [one per instance]}; each
    explanation has the prediction, the explained output (`target`), `attributions` and the
    `convergence_delta`."""
    pipeline, spec = predictor.pipeline, predictor.spec
    if spec.task == "reconstruction" or pipeline.target_kind == "none":
        raise NotExplainable(
            "autoencoders are not explained: they have no prediction to attribute; "
            "explain a classification, regression or forecasting model"
        )
    if not 1 <= n_steps <= MAX_STEPS:
        raise EngineError(f"n_steps: {n_steps} is outside 1..{MAX_STEPS}")
    inputs = torch.from_numpy(pipeline.inputs(instances))
    baseline = torch.from_numpy(baseline_input(pipeline)).expand_as(inputs).contiguous()
    predictions = predictor.predict(instances)
    with torch.no_grad():
        outputs = predictor.model(inputs).float().reshape(len(inputs), -1)
    indices, explained = _targets(pipeline, spec.task, outputs, target)

    forward, start, start_baseline, fold = _attribution_space(predictor.model, inputs, baseline)
    per_pass = max(1, PASS_ELEMENTS // max(1, start[0].numel()))
    with torch.enable_grad():
        attributions, delta = IntegratedGradients(forward).attribute(
            start,
            baselines=start_baseline,
            target=indices,
            n_steps=n_steps,
            internal_batch_size=max(n_steps, per_pass),
            return_convergence_delta=True,
        )
    attributions = fold(attributions.detach().double())
    explanations = [
        {
            "prediction": prediction,
            "target": explained[i],
            **_answer(pipeline, attributions[i].numpy()),
            "convergence_delta": float(delta[i]),
        }
        for i, prediction in enumerate(predictions)
    ]
    return {
        "method": METHOD,
        "n_steps": n_steps,
        "baseline": baseline_description(pipeline),
        "explanations": explanations,
    }


def baseline_input(pipeline: Any) -> np.ndarray:
    """The reference input [1, *input_shape] that attributions are measured from."""
    if isinstance(pipeline, TablePipeline):
        preprocessor = pipeline.preprocessor
        row = pipeline.inputs([{f.name: None for f in preprocessor.features}])
        at = 0
        for feature in preprocessor.features:
            at += feature.width
            if feature.indicator:
                row[0, at - 1] = 0.0
        return row.astype(np.float32)
    return np.zeros((1, *pipeline.input_shape), dtype=np.float32)


def baseline_description(pipeline: Any) -> str:
    if isinstance(pipeline, TablePipeline):
        return (
            "training fills: each number at its fitted fill (training median or mean), each "
            "category at its fill or unseen, missing flags 0"
        )
    return "training channel means (the all-zero standardised input)"


def _targets(
    pipeline: Any, task: str, outputs: torch.Tensor, target: Any
) -> tuple[list[int], list[Any]]:
    """The output index explained per row, and how the answer names it."""
    if pipeline.target_kind == "classes":
        classes = pipeline.classes()
        if outputs.shape[1] == 1:
            # Binary cross-entropy's single logit (class 1): explaining class 0 is its negation,
            # which the answer does not attempt; the logit of class 1 is explained.
            raise NotExplainable(
                "models trained with binary_cross_entropy have one logit; explanations need "
                "one output per class (train with cross_entropy)"
            )
        if target is None:
            picked = outputs.argmax(dim=1).tolist()
            return picked, [classes[i] for i in picked]
        for i, label in enumerate(classes):
            if label == target or str(label) == str(target):
                return [i] * len(outputs), [label] * len(outputs)
        shown = ", ".join(repr(c) for c in classes[:20])
        raise InvalidTarget(f"{target!r} is not a class of this model; its classes are {shown}")
    width = outputs.shape[1]
    if target is None:
        if width > 1 and task != "forecasting":
            raise InvalidTarget(f"this model has {width} outputs; give target 1..{width}")
        return [0] * len(outputs), [1] * len(outputs)
    if isinstance(target, bool) or not isinstance(target, int) or not 1 <= target <= width:
        what = "forecast steps" if task == "forecasting" else "outputs"
        raise InvalidTarget(f"{target!r} is not one of the model's {what} 1..{width}")
    return [target - 1] * len(outputs), [target] * len(outputs)


def _attribution_space(
    model: nn.Module, inputs: torch.Tensor, baseline: torch.Tensor
) -> tuple[Any, torch.Tensor, torch.Tensor, Any]:
    """(forward, inputs, baseline, fold) in the space gradients flow through: the model's
    input, or for a table with embedded category codes, the input after the lookup; `fold`
    maps attributions there back onto input positions."""
    first = model[0] if isinstance(model, nn.Sequential) and len(model) else None
    embeddings = [m for m in model.modules() if isinstance(m, nn.Embedding)]
    if not isinstance(first, InputEmbeddings):
        if embeddings:
            raise NotExplainable(
                "models reading token codes through an embedding layer are not explained: "
                "a code has no gradient"
            )
        return _logits(model), inputs.float(), baseline.float(), lambda a: a
    if len(embeddings) != len(first.tables):
        raise NotExplainable("models with embedding layers past the input are not explained")
    rest = model[1:]
    with torch.no_grad():
        start, start_baseline = first(inputs.float()), first(baseline.float())
    values_at = first.values_at.tolist()
    codes_at = first.codes_at.tolist()
    dims = [table.embedding_dim for table in first.tables]

    def fold(attributions: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(len(attributions), len(values_at) + len(codes_at), dtype=torch.float64)
        out[:, values_at] = attributions[:, : len(values_at)]
        at = len(values_at)
        for position, dim in zip(codes_at, dims, strict=True):
            out[:, position] = attributions[:, at : at + dim].sum(dim=1)
            at += dim
        return out

    return _logits(rest), start, start_baseline, fold


def _logits(network: nn.Module) -> Any:
    def forward(x: torch.Tensor) -> torch.Tensor:
        return network(x).float().reshape(len(x), -1)

    return forward


def _answer(pipeline: Any, attribution: np.ndarray) -> dict[str, Any]:
    """One instance's attributions, in the shape its kind of input reads."""
    if isinstance(pipeline, TablePipeline):
        return {"attributions": table_attributions(pipeline, attribution)}
    if isinstance(pipeline, WindowPipeline):
        channels = list(pipeline.scaler.channels)
        return {
            "attributions": attribution.sum(axis=1).tolist(),
            "channels": channels,
            "per_channel": attribution.tolist(),
        }
    assert isinstance(pipeline, ArrayPipeline)
    kind = pipeline.preprocessor.kind
    if kind == "image":
        return {"attributions": attribution.sum(axis=0).tolist()}
    if kind == "sequence":
        return {
            "attributions": attribution.sum(axis=1).tolist(),
            "per_channel": attribution.tolist(),
        }
    return {"attributions": attribution.reshape(-1).tolist()}


def column_spans(
    features: Sequence[NumericFeature | CategoricalFeature],
) -> list[tuple[str, int, int]]:
    """(raw column, first input position, end) of each table feature's encoded block."""
    spans, at = [], 0
    for feature in features:
        spans.append((feature.name, at, at + feature.width))
        at += feature.width
    return spans


def table_attributions(pipeline: TablePipeline, attribution: np.ndarray) -> dict[str, float]:
    return {
        name: float(attribution[start:stop].sum())
        for name, start, stop in column_spans(pipeline.preprocessor.features)
    }
