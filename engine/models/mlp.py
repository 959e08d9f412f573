"""MLP (dense network): [flatten] -> [dense, batch norm?, activation, dropout] * len(hidden)
-> dense(output).

The default spec builds `Linear-ReLU-Dropout-Linear-ReLU-Dropout-Linear` as one flat
`nn.Sequential`; saved weights are keyed by those positions, so that layout must not change.
"""

from __future__ import annotations

import math

from torch import nn

from engine.models.components import Built, Shape, activation, initialise
from engine.spec.model import MLPConfig


def build_mlp(config: MLPConfig, input_shape: Shape, output_dim: int, task: str) -> Built:
    layers: list[nn.Module] = []
    if len(input_shape) > 1:
        layers.append(nn.Flatten())
    width = math.prod(input_shape)
    for hidden in config.hidden:
        # Batch norm's own shift makes a bias before it redundant.
        layers.append(nn.Linear(width, hidden, bias=not config.batch_norm))
        if config.batch_norm:
            layers.append(nn.BatchNorm1d(hidden))
        layers.append(activation(config.activation, config.negative_slope))
        if config.dropout > 0:
            layers.append(nn.Dropout(config.dropout))
        width = hidden
    layers.append(nn.Linear(width, output_dim))
    model = nn.Sequential(*layers)
    initialise(model, config.init, config.activation, config.negative_slope)
    return Built(model, (output_dim,))
