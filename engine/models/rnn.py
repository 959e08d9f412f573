"""Recurrent network on sequence input [T, C] (time-major):
RNN/LSTM/GRU (stacked, optionally bidirectional) -> final state of the top layer (both
directions) -> [dropout] -> dense head. Used for sequence classification, sequence
regression and next-step forecasting alike; only the head's width differs.
"""

from __future__ import annotations

import torch
from torch import nn

from engine.models.components import (
    Built,
    Recurrent,
    Shape,
    dense_head,
    initialise,
    require_rank,
)
from engine.spec.model import RNNConfig


class RecurrentNet(nn.Module):
    def __init__(self, recurrent: Recurrent, head: nn.Sequential) -> None:
        super().__init__()
        self.recurrent = recurrent
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.recurrent(x))


def build_rnn(config: RNNConfig, input_shape: Shape, output_dim: int, task: str) -> Built:
    require_rank(input_shape, (2,), "model.family", "rnn")
    steps, channels = input_shape
    recurrent = Recurrent(
        config.cell,
        channels,
        config.hidden,
        layers=config.layers,
        bidirectional=config.bidirectional,
        dropout=config.dropout,
    )
    (width,) = recurrent.output_shape(steps)
    head = dense_head(
        width, config.head, output_dim, config.activation, config.negative_slope, config.dropout
    )
    model = RecurrentNet(recurrent, head)
    initialise(model, config.init, config.activation, config.negative_slope)
    return Built(model, (output_dim,))
