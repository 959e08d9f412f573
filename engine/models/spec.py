"""The `model` section of a spec: a family preset with a few knobs."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from engine.spec_model import SpecModel

Activation = Literal["relu", "leaky_relu", "elu", "selu", "gelu", "sigmoid", "tanh"]


class MLPConfig(SpecModel):
    family: Literal["mlp"] = "mlp"
    hidden: list[Annotated[int, Field(ge=1, le=65536)]] = Field(
        default_factory=lambda: [64, 32], max_length=64
    )
    activation: Activation = "relu"
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0)


ModelConfig = MLPConfig
