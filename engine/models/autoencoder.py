"""Autoencoders for task `reconstruction`: output shape == input shape, and `encode(x)` gives
the latent vector [N, latent] (the embeddings the encode endpoint returns).

dense: [flatten] -> [dense, act] * hidden -> dense(latent) -> [dense, act] * reversed(hidden)
    -> dense(input size) -> [unflatten].
conv (on [T, C] or [C, H, W]): per entry of `hidden` a stride-2 conv (3 wide) + act, flatten,
    dense(latent); the decoder mirrors it with dense + unflatten, then per stage an upsample
    to the exact size the encoder saw (so odd sizes come back exactly) and a conv + act; the
    last conv maps back to the input channels with an identity output.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from engine.errors import SpecMismatch
from engine.models.components import (
    Built,
    ChannelsFirst,
    Shape,
    activation,
    conv_length,
    initialise,
    require_rank,
    show,
)
from engine.spec.model import AutoencoderConfig

DENSE_HIDDEN = [64, 32]
CONV_HIDDEN = [16, 32]


class Autoencoder(nn.Module):
    def __init__(self, encoder: nn.Sequential, decoder: nn.Sequential) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def build_autoencoder(
    config: AutoencoderConfig, input_shape: Shape, output_dim: int, task: str
) -> Built:
    kind = config.kind or ("conv" if len(input_shape) == 3 else "dense")
    if kind == "conv":
        require_rank(input_shape, (2, 3), "model.kind", "a conv autoencoder")
        encoder, decoder = _conv(config, input_shape)
    else:
        encoder, decoder = _dense(config, input_shape)
    model = Autoencoder(encoder, decoder)
    initialise(model, config.init, config.activation, config.negative_slope)
    return Built(model, input_shape)


def _dense(config: AutoencoderConfig, input_shape: Shape) -> tuple[nn.Sequential, nn.Sequential]:
    size = math.prod(input_shape)
    widths = [size, *(config.hidden or DENSE_HIDDEN)]
    encoder: list[nn.Module] = [nn.Flatten()] if len(input_shape) > 1 else []
    for width_in, width_out in zip(widths, widths[1:], strict=False):
        encoder += [
            nn.Linear(width_in, width_out),
            activation(config.activation, config.negative_slope),
        ]
    encoder.append(nn.Linear(widths[-1], config.latent))

    decoder: list[nn.Module] = []
    width = config.latent
    for width_out in reversed(widths[1:]):
        decoder += [
            nn.Linear(width, width_out),
            activation(config.activation, config.negative_slope),
        ]
        width = width_out
    decoder.append(nn.Linear(width, size))
    if len(input_shape) > 1:
        decoder.append(nn.Unflatten(1, input_shape))
    return nn.Sequential(*encoder), nn.Sequential(*decoder)


class TimeMajorOutput(nn.Module):
    """[N, C, T] -> [N, T, C]: back to the sequence layout the input came in."""

    kind = "transpose"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(1, 2)


def _conv(config: AutoencoderConfig, input_shape: Shape) -> tuple[nn.Sequential, nn.Sequential]:
    dims = len(input_shape) - 1
    conv = nn.Conv1d if dims == 1 else nn.Conv2d
    # Channels first inside: a sequence [T, C] becomes [C, T].
    shape = (input_shape[1], input_shape[0]) if dims == 1 else input_shape
    encoder: list[nn.Module] = [ChannelsFirst()] if dims == 1 else []
    shapes = [shape]
    for filters in config.hidden or CONV_HIDDEN:
        encoder += [
            conv(shape[0], filters, 3, stride=2, padding=1),
            activation(config.activation, config.negative_slope),
        ]
        shape = (filters, *(conv_length(size, 3, 2, 1) for size in shape[1:]))
        shapes.append(shape)
    flat = math.prod(shape)
    if flat > 1_000_000:
        raise SpecMismatch(
            "model.hidden",
            f"the encoder's last map {show(shape)} has {flat} values before the latent layer; "
            "add a stage or use fewer filters",
        )
    encoder += [nn.Flatten(), nn.Linear(flat, config.latent)]

    decoder: list[nn.Module] = [
        nn.Linear(config.latent, flat),
        activation(config.activation, config.negative_slope),
        nn.Unflatten(1, shape),
    ]
    for stage in range(len(shapes) - 1, 0, -1):
        target = shapes[stage - 1]
        decoder += [
            nn.Upsample(size=target[1:], mode="nearest"),
            conv(shapes[stage][0], target[0], 3, padding=1),
        ]
        if stage > 1:  # the last conv is the output: identity, like every regression output
            decoder.append(activation(config.activation, config.negative_slope))
    if dims == 1:
        decoder.append(TimeMajorOutput())
    return nn.Sequential(*encoder), nn.Sequential(*decoder)
