"""The layer table a user sees before training: measured by a dry forward pass, not guessed.

A row is a direct child of the model; a child that is a plain `nn.Sequential` or
`nn.ModuleList` (a list of blocks, a head) is opened one level, its rows named `name[i]`, so
the rows of the `layers` family read `layers[0]`, `layers[1]`, ... like the spec's paths.
Every parameter lives in some row, so the rows' counts add up to the total.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from engine.models.components import ACTIVATIONS, Shape

TYPE_NAMES: dict[type[nn.Module], str] = {
    nn.Linear: "dense",
    nn.Conv1d: "conv1d",
    nn.Conv2d: "conv2d",
    nn.BatchNorm1d: "batch_norm",
    nn.BatchNorm2d: "batch_norm",
    nn.Dropout: "dropout",
    nn.Flatten: "flatten",
    nn.Unflatten: "unflatten",
    nn.Upsample: "upsample",
    nn.MaxPool1d: "max_pool1d",
    nn.MaxPool2d: "max_pool2d",
    nn.AvgPool1d: "avg_pool1d",
    nn.AvgPool2d: "avg_pool2d",
    **{cls: name for name, cls in ACTIVATIONS.items()},
}


@dataclass
class LayerSummary:
    name: str
    type: str
    output_shape: list[int]
    parameters: int


@dataclass
class ModelSummary:
    """Shapes are of one example: the batch dimension is left out."""

    layers: list[LayerSummary]
    parameters: int
    output_shape: list[int]
    input_shape: list[int]
    # The spec's DBN pretraining (engine/training/pretraining.py: describe_pretraining), if any.
    pretraining: dict[str, Any] | None = None


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def summarise(model: nn.Module, input_shape: Shape) -> ModelSummary:
    """Run a zero batch of 2 through `model` (eval mode, no grad) and record each row's
    output shape."""
    rows = list(_rows(model))
    shapes: dict[str, list[int]] = {}
    hooks = [module.register_forward_hook(_recorder(shapes, name)) for name, module in rows]
    was_training = model.training
    model.train(False)  # eval mode
    try:
        with torch.no_grad():
            output = model(torch.zeros((2, *input_shape)))
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    return ModelSummary(
        input_shape=list(input_shape),
        output_shape=list(output.shape[1:]),
        parameters=count_parameters(model),
        layers=[
            LayerSummary(name, _type_name(module), shapes.get(name, []), count_parameters(module))
            for name, module in rows
        ],
    )


def _rows(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    for name, child in model.named_children():
        if type(child) in (nn.Sequential, nn.ModuleList):
            for index, grandchild in enumerate(child):
                yield f"{name}[{index}]", grandchild
        else:
            yield name, child


def _recorder(shapes: dict[str, list[int]], name: str) -> Callable[..., None]:
    def record(_module: nn.Module, _inputs: object, output: object) -> None:
        tensor = output[0] if isinstance(output, tuple) else output
        if isinstance(tensor, torch.Tensor):
            shapes[name] = list(tensor.shape[1:])

    return record


def _type_name(module: nn.Module) -> str:
    kind = getattr(module, "kind", None)
    if isinstance(kind, str):
        return kind
    return TYPE_NAMES.get(type(module), type(module).__name__.lower())
