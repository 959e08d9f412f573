"""The `layers` family: the user's own list of layers, built one by one while the shape of one
example is tracked, so a layer that cannot take its input is named (`model.layers[3].
kernel_size`) before torch would fail with an error about tensors. Each layer kind has its
own small builder, looked up by the layer's `type` in LAYER_BUILDERS.

Layouts: features [F]; sequences [T, C], time-major, throughout the list (conv1d, pooling and
batch norm transpose to channels-first and back inside, so they mix freely with recurrent
layers); images [C, H, W]. `dense` acts on the last axis, like `nn.Linear`.

Masks: when the first layer is an `embedding` with a `padding_idx`, the steps holding that
code are padding. A mask [N, T] (True for a real step) is made from the codes and handed to
every layer that can use it (self_attention, attention_pooling, global_avg_pool, the
recurrent layers, which then read the real steps alone, residual blocks around them) for as
long as the layers keep the sequence [T, C] at its length T; a layer that changes T (pooling,
a strided or unpadded conv1d, a recurrent layer without return_sequences, flatten) ends it.

The head: for classification, regression and forecasting, unless the last layer is a `dense`
whose output is already [output size], `flatten` (when the rank is above 1) and
`dense(output size)` with identity output are appended. For reconstruction nothing is
appended and the list must end at the input shape.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from engine.errors import SpecMismatch
from engine.models.attention import AttentionPooling, SelfAttention
from engine.models.components import (
    Built,
    Embedding,
    GlobalAvgPool,
    Recurrent,
    Residual,
    Shape,
    TimeMajor,
    activation,
    conv_length,
    conv_padding,
    initialise,
    require_rank,
    show,
)
from engine.spec.model import (
    ActivationLayer,
    AttentionPoolingLayer,
    AvgPool1dLayer,
    AvgPool2dLayer,
    BatchNormLayer,
    Conv1dLayer,
    Conv2dLayer,
    DenseLayer,
    DropoutLayer,
    EmbeddingLayer,
    FlattenLayer,
    GlobalAvgPoolLayer,
    GRULayer,
    Init,
    Layer,
    LayersConfig,
    LSTMLayer,
    MaxPool1dLayer,
    MaxPool2dLayer,
    ResidualLayer,
    RNNLayer,
    SelfAttentionLayer,
)

AT_LAYER = "at this layer the input is"


class Unit(nn.Sequential):
    """The modules of one layer of the list, and its type for the model summary.
    `keeps_mask`: the padding mask still describes this layer's output steps."""

    takes_mask = True

    def __init__(self, kind: str, *modules: nn.Module, keeps_mask: bool = False) -> None:
        super().__init__(*modules)
        self.kind = kind
        self.keeps_mask = keeps_mask

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return _run(self, x, mask)


def _run(modules: nn.Module, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Each module in turn; those that take a mask get it while it is still valid."""
    for module in modules.children():
        x = module(x, mask) if getattr(module, "takes_mask", False) else module(x)
        if isinstance(module, Unit) and not module.keeps_mask:
            mask = None
    return x


class TimeMean(nn.Module):
    """Global average pooling of a time-major sequence: [N, T, C] -> [N, C]; with a mask,
    the mean of the real steps."""

    takes_mask = True

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is None:
            return x.mean(dim=1)
        weights = mask.to(x.dtype).unsqueeze(-1)
        return (x * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


class MaskedResidual(Residual):
    """A residual block of the list: its inner layers get the padding mask."""

    takes_mask = True

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        skip = x if self.projection is None else self.projection(x)
        return skip + _run(self.body, x, mask)


class LayerStack(nn.Module):
    def __init__(
        self, layers: list[Unit], head: nn.Sequential | None, padding_code: int | None = None
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.head = head
        self.padding_code = padding_code

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Codes arrive as floats, as every input does; a padded step holds the padding code.
        mask = None if self.padding_code is None else x != self.padding_code
        x = _run(self.layers, x, mask)
        return x if self.head is None else self.head(x)


def build_layers(config: LayersConfig, input_shape: Shape, output_dim: int, task: str) -> Built:
    first = config.layers[0]
    padding_code = first.padding_idx if isinstance(first, EmbeddingLayer) else None
    # The mask covers the embedding's steps: the codes' positions.
    mask_steps = input_shape[0] if padding_code is not None else None
    units, shape = _build_list(
        config.layers, input_shape, "model.layers", config.init, top=True, mask_steps=mask_steps
    )
    head = None
    if task == "reconstruction":
        if shape != input_shape:
            raise SpecMismatch(
                "model.layers",
                f"reconstruction needs the layers to end at the input shape {show(input_shape)}; "
                f"they end at {show(shape)}",
            )
    elif not (isinstance(config.layers[-1], DenseLayer) and shape == (output_dim,)):
        head = nn.Sequential(
            *([nn.Flatten()] if len(shape) > 1 else []),
            nn.Linear(math.prod(shape), output_dim),
        )
        initialise(head, config.init)
        shape = (output_dim,)
    return Built(LayerStack(units, head, padding_code), shape)


def _build_list(
    layers: list[Layer],
    shape: Shape,
    prefix: str,
    init: Init,
    top: bool,
    mask_steps: int | None = None,
) -> tuple[list[Unit], Shape]:
    units = []
    for index, layer in enumerate(layers):
        path = f"{prefix}[{index}]"
        if isinstance(layer, EmbeddingLayer) and not (top and index == 0):
            raise SpecMismatch(
                f"{path}.type", "embedding takes integer codes, so it must be the first layer"
            )
        unit, shape = _build_layer(layer, shape, path, init, mask_steps)
        if mask_steps is not None and not (len(shape) == 2 and shape[0] == mask_steps):
            mask_steps = None  # the steps no longer line up with the codes' positions
        unit.keeps_mask = mask_steps is not None
        units.append(unit)
    return units, shape


def _build_layer(
    layer: Layer, shape: Shape, path: str, init: Init, mask_steps: int | None = None
) -> tuple[Unit, Shape]:
    kind = layer.type
    act = getattr(layer, "activation", None)
    slope = getattr(layer, "negative_slope", 0.01)
    build = LAYER_BUILDERS.get(kind)
    if build is None:  # pragma: no cover - the spec's union admits no other type
        raise SpecMismatch(f"{path}.type", f"unknown layer type {kind!r}")
    if isinstance(layer, ResidualLayer):
        modules, shape = _build_residual(layer, shape, path, init, mask_steps)
    else:
        modules, shape = build(layer, shape, path, init)

    if act is not None:
        modules.append(activation(act, slope))
    unit = Unit(kind, *modules)
    if not isinstance(layer, ResidualLayer):  # a residual block's layers are initialised above
        initialise(unit, init, act or "relu", slope)
    return unit, shape


# One builder per layer kind: the modules of the layer (its `activation`, if any, is appended
# by `_build_layer`) and the shape of one example after it.
LayerBuilder = Callable[[Any, Shape, str, Init], tuple[list[nn.Module], Shape]]


def _build_dense(
    layer: DenseLayer, shape: Shape, path: str, init: Init
) -> tuple[list[nn.Module], Shape]:
    modules: list[nn.Module] = [nn.Linear(shape[-1], layer.units)]
    shape = (*shape[:-1], layer.units)
    return modules, shape


def _build_conv1d(
    layer: Conv1dLayer, shape: Shape, path: str, init: Init
) -> tuple[list[nn.Module], Shape]:
    require_rank(shape, (2,), path, "conv1d", AT_LAYER)
    steps, channels = shape
    _fits(layer.kernel_size, steps, "length", f"{path}.kernel_size")
    conv = nn.Conv1d(
        channels,
        layer.filters,
        layer.kernel_size,
        stride=layer.stride,
        padding=conv_padding(layer.padding, layer.kernel_size, layer.stride),
    )
    modules: list[nn.Module] = [TimeMajor(conv)]
    shape = (
        conv_length(steps, layer.kernel_size, layer.stride, layer.padding),
        layer.filters,
    )
    return modules, shape


def _build_conv2d(
    layer: Conv2dLayer, shape: Shape, path: str, init: Init
) -> tuple[list[nn.Module], Shape]:
    require_rank(shape, (3,), path, "conv2d", AT_LAYER)
    channels, height, width = shape
    _fits(layer.kernel_size, height, "height", f"{path}.kernel_size")
    _fits(layer.kernel_size, width, "width", f"{path}.kernel_size")
    modules: list[nn.Module] = [
        nn.Conv2d(
            channels,
            layer.filters,
            layer.kernel_size,
            stride=layer.stride,
            padding=conv_padding(layer.padding, layer.kernel_size, layer.stride),
        )
    ]
    shape = (
        layer.filters,
        *(
            conv_length(size, layer.kernel_size, layer.stride, layer.padding)
            for size in (height, width)
        ),
    )
    return modules, shape


def _build_pool1d(
    layer: MaxPool1dLayer | AvgPool1dLayer, shape: Shape, path: str, init: Init
) -> tuple[list[nn.Module], Shape]:
    require_rank(shape, (2,), path, layer.type, AT_LAYER)
    steps, channels = shape
    # A window wider than the input would pool it down to nothing.
    _fits(layer.size, steps, "length", f"{path}.size")
    pool = nn.MaxPool1d if isinstance(layer, MaxPool1dLayer) else nn.AvgPool1d
    modules: list[nn.Module] = [TimeMajor(pool(layer.size))]
    shape = (steps // layer.size, channels)
    return modules, shape


def _build_pool2d(
    layer: MaxPool2dLayer | AvgPool2dLayer, shape: Shape, path: str, init: Init
) -> tuple[list[nn.Module], Shape]:
    require_rank(shape, (3,), path, layer.type, AT_LAYER)
    channels, height, width = shape
    _fits(layer.size, height, "height", f"{path}.size")
    _fits(layer.size, width, "width", f"{path}.size")
    pool = nn.MaxPool2d if isinstance(layer, MaxPool2dLayer) else nn.AvgPool2d
    modules: list[nn.Module] = [pool(layer.size)]
    shape = (channels, height // layer.size, width // layer.size)
    return modules, shape


def _build_global_avg_pool(
    layer: GlobalAvgPoolLayer, shape: Shape, path: str, init: Init
) -> tuple[list[nn.Module], Shape]:
    require_rank(shape, (2, 3), path, layer.type, AT_LAYER)
    modules: list[nn.Module] = [TimeMean() if len(shape) == 2 else GlobalAvgPool()]
    shape = (shape[-1],) if len(shape) == 2 else (shape[0],)
    return modules, shape


def _build_batch_norm(
    layer: BatchNormLayer, shape: Shape, path: str, init: Init
) -> tuple[list[nn.Module], Shape]:
    require_rank(shape, (1, 2, 3), path, layer.type, AT_LAYER)
    modules: list[nn.Module]
    if len(shape) == 3:
        modules = [nn.BatchNorm2d(shape[0])]
    elif len(shape) == 2:
        modules = [TimeMajor(nn.BatchNorm1d(shape[1]))]
    else:
        modules = [nn.BatchNorm1d(shape[0])]
    return modules, shape


def _build_dropout(
    layer: DropoutLayer, shape: Shape, path: str, init: Init
) -> tuple[list[nn.Module], Shape]:
    return [nn.Dropout(layer.rate)], shape


def _build_flatten(
    layer: FlattenLayer, shape: Shape, path: str, init: Init
) -> tuple[list[nn.Module], Shape]:
    return [nn.Flatten()], (math.prod(shape),)


def _build_recurrent(
    layer: RNNLayer | LSTMLayer | GRULayer, shape: Shape, path: str, init: Init
) -> tuple[list[nn.Module], Shape]:
    require_rank(shape, (2,), path, layer.type, AT_LAYER)
    steps, channels = shape
    recurrent = Recurrent(
        layer.type,
        channels,
        layer.units,
        layers=layer.layers,
        bidirectional=layer.bidirectional,
        dropout=layer.dropout,
        return_sequences=layer.return_sequences,
    )
    modules: list[nn.Module] = [recurrent]
    shape = recurrent.output_shape(steps)
    return modules, shape


def _build_embedding(
    layer: EmbeddingLayer, shape: Shape, path: str, init: Init
) -> tuple[list[nn.Module], Shape]:
    require_rank(shape, (1,), path, "embedding (integer codes)", AT_LAYER)
    modules: list[nn.Module] = [Embedding(layer.num_embeddings, layer.dim, layer.padding_idx)]
    shape = (shape[0], layer.dim)
    return modules, shape


def _build_self_attention(
    layer: SelfAttentionLayer, shape: Shape, path: str, init: Init
) -> tuple[list[nn.Module], Shape]:
    require_rank(shape, (2,), path, layer.type, AT_LAYER)
    channels = shape[1]
    if channels % layer.heads:
        raise SpecMismatch(
            f"{path}.heads",
            f"{layer.heads} heads do not divide the {channels} channels at that layer; "
            "each head takes an equal share",
        )
    return [SelfAttention(channels, layer.heads, layer.dropout)], shape


def _build_attention_pooling(
    layer: AttentionPoolingLayer, shape: Shape, path: str, init: Init
) -> tuple[list[nn.Module], Shape]:
    require_rank(shape, (2,), path, layer.type, AT_LAYER)
    return [AttentionPooling(shape[1], layer.hidden)], (shape[1],)


def _build_activation(
    layer: ActivationLayer, shape: Shape, path: str, init: Init
) -> tuple[list[nn.Module], Shape]:
    return [activation(layer.function, layer.negative_slope)], shape


def _build_residual(
    layer: ResidualLayer, shape: Shape, path: str, init: Init, mask_steps: int | None = None
) -> tuple[list[nn.Module], Shape]:
    inner, inner_shape = _build_list(
        layer.layers, shape, f"{path}.layers", init, top=False, mask_steps=mask_steps
    )
    projection = _projection(shape, inner_shape, f"{path}.layers")
    if projection is not None:
        initialise(projection, init)
    modules: list[nn.Module] = [MaskedResidual(nn.Sequential(*inner), projection)]
    return modules, inner_shape


# Keyed by the layer's `type`, as the spec's LAYER_TYPES is.
LAYER_BUILDERS: dict[str, LayerBuilder] = {
    "dense": _build_dense,
    "conv1d": _build_conv1d,
    "conv2d": _build_conv2d,
    "max_pool1d": _build_pool1d,
    "avg_pool1d": _build_pool1d,
    "max_pool2d": _build_pool2d,
    "avg_pool2d": _build_pool2d,
    "global_avg_pool": _build_global_avg_pool,
    "batch_norm": _build_batch_norm,
    "dropout": _build_dropout,
    "flatten": _build_flatten,
    "rnn": _build_recurrent,
    "lstm": _build_recurrent,
    "gru": _build_recurrent,
    "embedding": _build_embedding,
    "self_attention": _build_self_attention,
    "attention_pooling": _build_attention_pooling,
    "activation": _build_activation,
    "residual": _build_residual,
}


def _fits(size: int, extent: int, axis: str, field: str) -> None:
    if size > extent:
        raise SpecMismatch(field, f"{size} is larger than the input {axis} {extent} at that layer")


def _projection(shape: Shape, inner: Shape, field: str) -> nn.Module | None:
    """The skip path of a residual block: identity when the block keeps the shape, a 1x1
    projection when it changes only the channels, else the block cannot be residual."""
    if inner == shape:
        return None
    channel_axis = 0 if len(shape) == 3 else len(shape) - 1
    others_kept = len(inner) == len(shape) and all(
        a == b for axis, (a, b) in enumerate(zip(shape, inner, strict=True)) if axis != channel_axis
    )
    if not others_kept:
        raise SpecMismatch(
            field,
            f"the block turns {show(shape)} into {show(inner)}; a residual block may change "
            "only the channels, which the skip path then projects",
        )
    if len(shape) == 3:
        return nn.Conv2d(shape[0], inner[0], 1, bias=False)
    return nn.Linear(shape[-1], inner[-1], bias=False)  # the last axis: [F] or [T, C]
