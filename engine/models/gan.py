"""The gan family: a generator and a discriminator, for tables (MLPs) and images (DCGAN).

Both networks take one tensor, so the layer table and the loop treat them as any model:
- the generator reads [latent_dim + classes] (noise, then the one-hot class of a conditional
  GAN) and writes one example in the model's input space (what the fitted pipeline makes of a
  raw row or image);
- the discriminator reads an example with its class: [width + classes] for a table row,
  [C + classes, H, W] for an image (the class as constant planes), and writes one logit.

The generator's last module bounds its output to what the training data spans, so decoding
never meets a value the data could not have: table numbers lie in [low, high] of their
column (a sigmoid), one-hot blocks are softmax probabilities (Gumbel-softmax samples while
training, so the discriminator does not tell real from fake by hard versus soft one-hots),
image pixels lie in [low, high] of their channel (a tanh). Those bounds are buffers, saved
with the weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from engine.errors import SpecMismatch
from engine.spec.model import GANConfig

# Gumbel-softmax temperature of the one-hot blocks while training: near one-hot samples.
GUMBEL_TAU = 0.2
LEAKY_SLOPE = 0.2


@dataclass(frozen=True)
class Block:
    """Columns [start, stop) of a table's encoded row: one number, or a one-hot block."""

    start: int
    stop: int
    categorical: bool


class TableOutput(nn.Module):
    """Raw generator outputs -> a row of the encoded table: numbers bounded to their column's
    training range, categories as probabilities (samples in training). `integral` marks the
    numbers of integer (and boolean) columns, which decoding rounds."""

    kind = "table_output"

    def __init__(self, width: int, blocks: Sequence[Block]) -> None:
        super().__init__()
        self.blocks = list(blocks)
        self.numeric = [b.start for b in self.blocks if not b.categorical]
        self.register_buffer("low", torch.zeros(width))
        self.register_buffer("high", torch.ones(width))
        self.register_buffer("integral", torch.zeros(width))

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        parts = []
        for block in self.blocks:
            values = raw[:, block.start : block.stop]
            if block.categorical:
                if self.training:
                    values = F.gumbel_softmax(values, tau=GUMBEL_TAU, hard=False, dim=1)
                else:
                    values = torch.softmax(values, dim=1)
            else:
                low = self.low[block.start : block.stop]
                high = self.high[block.start : block.stop]
                values = low + (high - low) * torch.sigmoid(values)
            parts.append(values)
        return torch.cat(parts, dim=1)


class ImageOutput(nn.Module):
    """Raw generator maps -> images with each channel in its training range."""

    kind = "image_output"

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.register_buffer("low", torch.zeros(channels))
        self.register_buffer("high", torch.ones(channels))

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        low, high = self.low.view(1, -1, 1, 1), self.high.view(1, -1, 1, 1)
        return low + (high - low) * (torch.tanh(raw) + 1) / 2


class Generator(nn.Sequential):
    """Noise (and class) -> one example. `class_prior` is the training rows' class
    frequencies: what a conditional sample without a label draws its classes from."""

    def __init__(self, *layers: nn.Module, classes: int) -> None:
        super().__init__(*layers)
        self.register_buffer("class_prior", torch.full((max(classes, 1),), 1.0 / max(classes, 1)))


@dataclass(frozen=True)
class GANShapes:
    """What building reads of the data: one example's shape, the table's blocks (None for
    images), and the classes a conditional GAN is conditioned on (0: unconditional)."""

    example: tuple[int, ...]
    blocks: tuple[Block, ...] | None
    classes: int

    def generator_input(self, config: GANConfig) -> tuple[int, ...]:
        return (config.latent_dim + self.classes,)

    def discriminator_input(self) -> tuple[int, ...]:
        if len(self.example) == 1:
            return (self.example[0] + self.classes,)
        channels, *size = self.example
        return (channels + self.classes, *size)


def build_generator(config: GANConfig, shapes: GANShapes) -> Generator:
    if len(shapes.example) == 1:
        return _table_generator(config, shapes)
    return _image_generator(config, shapes)


def build_discriminator(config: GANConfig, shapes: GANShapes) -> nn.Sequential:
    if len(shapes.example) == 1:
        return _table_discriminator(config, shapes)
    return _image_discriminator(config, shapes)


def _table_generator(config: GANConfig, shapes: GANShapes) -> Generator:
    width = shapes.example[0]
    layers: list[nn.Module] = []
    previous = config.latent_dim + shapes.classes
    for units in config.hidden:
        layers += [nn.Linear(previous, units), nn.BatchNorm1d(units), nn.ReLU()]
        previous = units
    layers += [nn.Linear(previous, width), TableOutput(width, shapes.blocks or ())]
    return Generator(*layers, classes=shapes.classes)


def _table_discriminator(config: GANConfig, shapes: GANShapes) -> nn.Sequential:
    norm = spectral_norm if config.spectral_norm else _unchanged
    layers: list[nn.Module] = []
    previous = shapes.discriminator_input()[0]
    for units in reversed(config.hidden):
        layers += [norm(nn.Linear(previous, units)), nn.LeakyReLU(LEAKY_SLOPE)]
        previous = units
    layers.append(norm(nn.Linear(previous, 1)))
    return nn.Sequential(*layers)


def _image_size_check(config: GANConfig, shapes: GANShapes) -> tuple[int, int, int]:
    channels, height, width = shapes.example
    factor = 2 ** len(config.filters)
    if height % factor or width % factor:
        raise SpecMismatch(
            "model.filters",
            f"{len(config.filters)} blocks halve the image {len(config.filters)} times, so "
            f"height and width must be divisible by {factor}; the images are {height}x{width}: "
            "use fewer filters or data.image_size",
        )
    return channels, height // factor, width // factor


def _image_generator(config: GANConfig, shapes: GANShapes) -> Generator:
    channels, h0, w0 = _image_size_check(config, shapes)
    first = config.filters[0]
    layers: list[nn.Module] = [
        nn.Linear(config.latent_dim + shapes.classes, first * h0 * w0),
        nn.Unflatten(1, (first, h0, w0)),
        nn.BatchNorm2d(first),
        nn.ReLU(),
    ]
    previous = first
    for filters in config.filters[1:]:
        layers += [
            nn.ConvTranspose2d(previous, filters, 4, stride=2, padding=1),
            nn.BatchNorm2d(filters),
            nn.ReLU(),
        ]
        previous = filters
    layers += [
        nn.ConvTranspose2d(previous, channels, 4, stride=2, padding=1),
        ImageOutput(channels),
    ]
    return Generator(*layers, classes=shapes.classes)


def _image_discriminator(config: GANConfig, shapes: GANShapes) -> nn.Sequential:
    _, h0, w0 = _image_size_check(config, shapes)
    norm = spectral_norm if config.spectral_norm else _unchanged
    layers: list[nn.Module] = []
    previous = shapes.discriminator_input()[0]
    for filters in reversed(config.filters):
        layers += [
            norm(nn.Conv2d(previous, filters, 4, stride=2, padding=1)),
            nn.LeakyReLU(LEAKY_SLOPE),
        ]
        previous = filters
    layers += [nn.Flatten(), norm(nn.Linear(previous * h0 * w0, 1))]
    return nn.Sequential(*layers)


def _unchanged(module: nn.Module) -> nn.Module:
    return module


def with_condition(x: torch.Tensor, onehot: torch.Tensor | None) -> torch.Tensor:
    """An example (or noise) with its class appended: as columns of a row, or as constant
    planes of an image."""
    if onehot is None:
        return x
    if x.ndim == 2:
        return torch.cat([x, onehot], dim=1)
    planes = onehot[:, :, None, None].expand(-1, -1, *x.shape[2:])
    return torch.cat([x, planes], dim=1)
