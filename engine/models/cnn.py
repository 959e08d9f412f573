"""CNN presets.

image ([C, H, W], or [H, W] as one channel), small VGG/ResNet-like:
    per entry of `filters`: conv-bn-act-conv-bn-act (a ResNet basic block when `residual`),
    then a 2x2 max pool while the map is at least 2x2; global average pooling; dense head.
sequence ([T, C], time-major like the recurrent family), FCN (Wang et al., 2017):
    transpose to [C, T]; per entry of `filters`: conv1d-bn-act with "same" padding (kernels
    7, 5, 3 by default); global average pooling over time; dense head.

A kernel_size the user wrote must fit the input; deeper blocks see smaller maps, and there
the kernel is narrowed to the map (kept odd), because a wider one would only cover padding.
"""

from __future__ import annotations

import torch
from torch import nn

from engine.errors import SpecMismatch
from engine.models.components import (
    AddChannel,
    Built,
    ChannelsFirst,
    GlobalAvgPool,
    Shape,
    activation,
    dense_head,
    initialise,
    require_rank,
    show,
)
from engine.spec.model import Activation, CNNConfig

IMAGE_FILTERS = [32, 64]
SEQUENCE_FILTERS = [64, 128, 128]
IMAGE_KERNEL = 3
# FCN's 8, 5, 3, made odd: PyTorch pads an even kernel "same" only through a padded copy.
SEQUENCE_KERNELS = [7, 5, 3]


class ConvBlock(nn.Module):
    """`convs` x (conv-bn-act) with "same" padding; with `residual`, the last activation
    comes after adding the input (through a 1x1 conv-bn when the channels change). Then an
    optional 2-wide max pool."""

    def __init__(
        self,
        dims: int,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        convs: int,
        residual: bool,
        act: Activation,
        negative_slope: float,
        pool: bool,
    ) -> None:
        super().__init__()
        conv = nn.Conv1d if dims == 1 else nn.Conv2d
        norm = nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d
        self.kind = f"{'residual' if residual else 'conv'}{dims}d_block"
        body: list[nn.Module] = []
        channels = in_channels
        for index in range(convs):
            # Batch norm's shift makes the conv's bias redundant.
            body += [conv(channels, out_channels, kernel_size, padding="same", bias=False)]
            body += [norm(out_channels)]
            if index < convs - 1 or not residual:
                body.append(activation(act, negative_slope))
            channels = out_channels
        self.body = nn.Sequential(*body)
        self.skip: nn.Module | None = None
        self.out_activation: nn.Module | None = None
        if residual:
            self.skip = (
                nn.Identity()
                if in_channels == out_channels
                else nn.Sequential(
                    conv(in_channels, out_channels, 1, bias=False), norm(out_channels)
                )
            )
            self.out_activation = activation(act, negative_slope)
        self.pool = (nn.MaxPool1d(2) if dims == 1 else nn.MaxPool2d(2)) if pool else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        if self.skip is not None and self.out_activation is not None:
            y = self.out_activation(y + self.skip(x))
        if self.pool is not None:
            y = self.pool(y)
        return y


class ConvNet(nn.Module):
    def __init__(
        self, adapter: nn.Module | None, blocks: list[ConvBlock], head: nn.Sequential
    ) -> None:
        super().__init__()
        self.adapter = adapter
        self.blocks = nn.ModuleList(blocks)
        self.pool = GlobalAvgPool()
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.adapter is not None:
            x = self.adapter(x)
        for block in self.blocks:
            x = block(x)
        return self.head(self.pool(x))


def build_cnn(config: CNNConfig, input_shape: Shape, output_dim: int, task: str) -> Built:
    preset = config.preset
    if preset is None:
        require_rank(input_shape, (2, 3), "model.family", "cnn")
        preset = "image" if len(input_shape) == 3 else "sequence"
    if preset == "image":
        require_rank(input_shape, (2, 3), "model.preset", "the image preset")
        adapter, blocks, channels = _image_blocks(config, input_shape)
    else:
        require_rank(input_shape, (2,), "model.preset", "the sequence preset")
        adapter, blocks, channels = _sequence_blocks(config, input_shape)
    head = dense_head(
        channels, config.head, output_dim, config.activation, config.negative_slope, config.dropout
    )
    model = ConvNet(adapter, blocks, head)
    initialise(model, config.init, config.activation, config.negative_slope)
    return Built(model, (output_dim,))


def _image_blocks(
    config: CNNConfig, input_shape: Shape
) -> tuple[nn.Module | None, list[ConvBlock], int]:
    adapter = None
    if len(input_shape) == 2:
        adapter, input_shape = AddChannel(), (1, *input_shape)
    channels, height, width = input_shape
    kernel = config.kernel_size or IMAGE_KERNEL
    if config.kernel_size is not None and kernel > min(height, width):
        raise SpecMismatch(
            "model.kernel_size",
            f"{kernel} is larger than the input image {height}x{width} (input {show(input_shape)})",
        )
    blocks = []
    for filters in config.filters or IMAGE_FILTERS:
        pool = height >= 2 and width >= 2
        blocks.append(
            ConvBlock(
                2,
                channels,
                filters,
                _narrowed(kernel, min(height, width)),
                convs=2,
                residual=config.residual,
                act=config.activation,
                negative_slope=config.negative_slope,
                pool=pool,
            )
        )
        channels = filters
        if pool:
            height, width = height // 2, width // 2
    return adapter, blocks, channels


def _sequence_blocks(
    config: CNNConfig, input_shape: Shape
) -> tuple[nn.Module | None, list[ConvBlock], int]:
    steps, channels = input_shape
    if config.kernel_size is not None and config.kernel_size > steps:
        raise SpecMismatch(
            "model.kernel_size",
            f"{config.kernel_size} is larger than the sequence length {steps} "
            f"(input {show(input_shape)})",
        )
    blocks = []
    for index, filters in enumerate(config.filters or SEQUENCE_FILTERS):
        kernel = config.kernel_size or (
            SEQUENCE_KERNELS[index] if index < len(SEQUENCE_KERNELS) else SEQUENCE_KERNELS[-1]
        )
        blocks.append(
            ConvBlock(
                1,
                channels,
                filters,
                _narrowed(kernel, steps),
                convs=1,
                residual=config.residual,
                act=config.activation,
                negative_slope=config.negative_slope,
                pool=False,
            )
        )
        channels = filters
    return ChannelsFirst(), blocks, channels


def _narrowed(kernel: int, extent: int) -> int:
    narrow = min(kernel, extent)
    return narrow - 1 if narrow % 2 == 0 and kernel % 2 == 1 else narrow
