"""Recurrent network on sequence input [T, C] (time-major):
RNN/LSTM/GRU (stacked, optionally bidirectional) -> final state of the top layer (both
directions) -> [dropout] -> dense head. Used for sequence classification, sequence
regression and next-step forecasting alike; only the head's width differs.

With `attention` the top layer returns its output at every step, and attention pooling
(after self-attention with a skip connection, for "self") makes the vector the head reads,
in place of the final state.
"""

from __future__ import annotations

import torch
from torch import nn

from engine.errors import SpecMismatch
from engine.models.attention import AttentionPooling, SelfAttentionPooling
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
    def __init__(
        self, recurrent: Recurrent, head: nn.Sequential, attention: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.recurrent = recurrent
        # Registered only when used, so models saved before the option load unchanged.
        if attention is not None:
            self.attention = attention
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.recurrent(x)
        if hasattr(self, "attention"):
            x = self.attention(x)
        return self.head(x)


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
        return_sequences=config.attention != "none",
    )
    width = recurrent.output_shape(steps)[-1]
    attention: nn.Module | None = None
    if config.attention == "pooling":
        attention = AttentionPooling(width)
    elif config.attention == "self":
        if width % config.attention_heads:
            raise SpecMismatch(
                "model.attention_heads",
                f"{config.attention_heads} heads do not divide the recurrent output width "
                f"{width} (directions x hidden)",
            )
        attention = SelfAttentionPooling(width, config.attention_heads)
    head = dense_head(
        width, config.head, output_dim, config.activation, config.negative_slope, config.dropout
    )
    model = RecurrentNet(recurrent, head, attention)
    initialise(model, config.init, config.activation, config.negative_slope)
    return Built(model, (output_dim,))
