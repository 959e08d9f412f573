"""Model families: a closed registry of builder functions keyed by the spec's `family`.

A family name from a user selects one of these functions; nothing is imported by name.
Each builder takes the family's config, the shape of one input example (inferred from the
data, never written by the user), the output size and the task, checks that the layers fit
that shape as it builds them, and raises `SpecMismatch` naming the spec field that does not.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import torch
from torch import nn

from engine.errors import SpecMismatch
from engine.models.autoencoder import build_autoencoder
from engine.models.cnn import build_cnn
from engine.models.components import Built, Shape, show
from engine.models.layers import build_layers
from engine.models.mlp import build_mlp
from engine.models.rnn import build_rnn
from engine.models.summary import LayerSummary, ModelSummary, count_parameters, summarise
from engine.models.tabular import EmbeddedInput, embedded_width, with_embeddings
from engine.spec.model import (
    AutoencoderConfig,
    CNNConfig,
    MLPConfig,
    ModelConfig,
    RNNConfig,
)

__all__ = [
    "DEFAULT_MAX_PARAMETERS",
    "EmbeddedInput",
    "MODEL_BUILDERS",
    "LayerSummary",
    "ModelSpec",
    "ModelSummary",
    "build_model",
    "count_parameters",
    "default_model_config",
    "describe_model",
]


class ModelSpec(Protocol):
    """What building a model reads from a spec (`engine.spec.Spec` is one)."""

    @property
    def task(self) -> str: ...

    @property
    def model(self) -> ModelConfig | None: ...


Builder = Callable[[Any, Shape, int, str], Built]

MODEL_BUILDERS: dict[str, Builder] = {
    "mlp": build_mlp,
    "cnn": build_cnn,
    "rnn": build_rnn,
    "autoencoder": build_autoencoder,
    "layers": build_layers,
}

# Families whose output can have the input's shape, as reconstruction needs.
RECONSTRUCTING = ("autoencoder", "layers")

# Families that take a feature vector [F], so embedded category codes can be put before them.
EMBEDDING_FAMILIES = ("mlp", "layers")

# A spec may not ask for more weights than a worker can hold: checked on the meta device,
# where building allocates nothing, before any real memory is spent.
DEFAULT_MAX_PARAMETERS = 100_000_000


def build_model(
    spec: ModelSpec,
    input_shape: int | Sequence[int],
    output_dim: int,
    *,
    embedded: Sequence[EmbeddedInput] = (),
    max_parameters: int | None = DEFAULT_MAX_PARAMETERS,
) -> nn.Module:
    """The model for `spec` on examples of `input_shape` ([F], [T, C] or [C, H, W]; an int is
    [F]). Its output is [N, output_dim], or [N, *input_shape] for task reconstruction (where
    output_dim is ignored). `embedded` names the input positions that hold category codes
    (a table pipeline's `embedded_inputs`): the model learns a vector for each code. Raises
    SpecMismatch naming the field when the spec does not fit."""
    return _build(spec, _as_shape(input_shape), output_dim, max_parameters, embedded).module


def describe_model(
    spec: ModelSpec,
    input_shape: int | Sequence[int],
    output_dim: int,
    *,
    embedded: Sequence[EmbeddedInput] = (),
    max_parameters: int | None = DEFAULT_MAX_PARAMETERS,
) -> ModelSummary:
    """Build the model and run a zero batch of 2 through it: the layer table (name, type,
    output shape, parameters) and the total, as the model really computes them."""
    shape = _as_shape(input_shape)
    built = _build(spec, shape, output_dim, max_parameters, embedded)
    try:
        return summarise(built.module, shape)
    except RuntimeError as exc:  # a check the builders missed: still the spec's fault, not a 500
        raise SpecMismatch("model", f"the model cannot run on input {show(shape)}: {exc}") from exc


def default_model_config(task: str, input_shape: int | Sequence[int]) -> ModelConfig:
    """The family a spec without `model` gets: an autoencoder for reconstruction, else by the
    input's rank an MLP for features [F], an RNN (LSTM) for sequences [T, C] and the image
    CNN for [C, H, W]."""
    rank = len(_as_shape(input_shape))
    if task == "reconstruction":
        return AutoencoderConfig()
    if rank == 2:
        return RNNConfig()
    if rank == 3:
        return CNNConfig()
    return MLPConfig()


def _build(
    spec: ModelSpec,
    shape: Shape,
    output_dim: int,
    max_parameters: int | None,
    embedded: Sequence[EmbeddedInput] = (),
) -> Built:
    config = spec.model if spec.model is not None else default_model_config(spec.task, shape)
    family, task = config.family, spec.task
    if task == "reconstruction" and family not in RECONSTRUCTING:
        raise SpecMismatch(
            "model.family",
            f"task reconstruction needs the autoencoder family or a layers list that ends at the "
            f"input shape; {family} predicts a vector",
        )
    if family == "autoencoder" and task != "reconstruction":
        raise SpecMismatch(
            "model.family", f"the autoencoder family is for task reconstruction, not {task}"
        )
    if task != "reconstruction" and output_dim < 1:
        raise ValueError(f"output_dim must be at least 1, got {output_dim}")
    builder = MODEL_BUILDERS[family]
    if embedded:
        if family not in EMBEDDING_FAMILIES or len(shape) != 1:
            raise SpecMismatch(
                "model.family",
                f"columns with encoding 'embedding' feed an mlp or a layers list; {family} "
                "cannot take them (use encoding 'onehot' or 'ordinal')",
            )
        builder = _embedding_builder(builder, embedded)
    if max_parameters is not None:
        with torch.device("meta"):
            parameters = count_parameters(builder(config, shape, output_dim, task).module)
        if parameters > max_parameters:
            raise SpecMismatch(
                "model",
                f"{parameters:,} parameters on input {show(shape)} is more than the limit of "
                f"{max_parameters:,}",
            )
    return builder(config, shape, output_dim, task)


def _embedding_builder(builder: Builder, embedded: Sequence[EmbeddedInput]) -> Builder:
    """`builder` on the vector the embeddings make, with the embedding lookup in front."""

    def build(config: Any, shape: Shape, output_dim: int, task: str) -> Built:
        width = shape[0]
        inner = builder(config, (embedded_width(width, embedded),), output_dim, task)
        return Built(with_embeddings(inner.module, width, embedded), inner.output_shape)

    return build


def _as_shape(input_shape: int | Sequence[int]) -> Shape:
    shape = (input_shape,) if isinstance(input_shape, int) else tuple(int(s) for s in input_shape)
    if not shape or math.prod(shape) < 1:
        raise SpecMismatch("features", f"the input shape {show(shape)} holds no values")
    return shape
