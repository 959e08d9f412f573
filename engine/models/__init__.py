"""Model families: a closed registry of builder functions keyed by the spec's `family`.

A family name from a user selects one of these functions; nothing is imported by name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from torch import nn

from engine.models.mlp import build_mlp

if TYPE_CHECKING:
    from engine.spec import Spec

MODEL_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "mlp": build_mlp,
}


def build_model(spec: Spec, input_dim: int, output_dim: int) -> nn.Module:
    return MODEL_BUILDERS[spec.model.family](spec.model, input_dim, output_dim)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
