"""Augmentation on the fly: random changes to each training batch, on the training device.

Images are [N, C, H, W]: flips, random crops after zero padding, small rotations, Gaussian
noise. Sequences are [N, T, C]: jitter (noise per step), scaling per channel, circular time
shifts. Every op is one vectorised torch call over the batch: no per-sample Python.

Only training batches are augmented; validation, test and predict see the data as it is. The
random numbers come from a generator of their own, seeded from the spec's seed and the epoch,
so a run resumed from a checkpoint draws exactly what an uninterrupted one draws.

For reconstruction the target follows the geometric changes (flip, crop, rotate, shift,
scale) and not the noise: an autoencoder with noise becomes a denoising autoencoder.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from engine.errors import SpecMismatch
from engine.spec.data import DataConfig

IMAGE_OPTIONS = ("horizontal_flip", "vertical_flip", "crop_padding", "rotation_degrees")
SEQUENCE_OPTIONS = ("jitter_std", "scaling_std", "time_shift")
SHARED_OPTIONS = ("noise_std",)
_THIS_ONE = {
    "image": "this one holds images",
    "sequence": "this one holds sequences",
    "vector": "this one holds vectors",
    "table": "this one is a table",
}


def active_options(data: DataConfig) -> list[str]:
    """The augment fields the spec turns on (non-default), in declaration order."""
    config = data.augment
    fields = type(config).model_fields
    return [name for name in fields if getattr(config, name) != fields[name].default]


def check_augment(data: DataConfig, kind: str, task: str) -> None:
    """Refuse an option that does not fit the data: `kind` is image, sequence, vector or
    table. Raises SpecMismatch naming the first such field."""
    for name in active_options(data):
        fits = (kind == "image" and name in IMAGE_OPTIONS + SHARED_OPTIONS) or (
            kind == "sequence" and name in SEQUENCE_OPTIONS + SHARED_OPTIONS
        )
        if not fits:
            allowed = "image" if name in IMAGE_OPTIONS else "image or sequence"
            if name in SEQUENCE_OPTIONS:
                allowed = "sequence"
            raise SpecMismatch(
                f"data.augment.{name}", f"applies to {allowed} datasets; {_THIS_ONE[kind]}"
            )
        if name == "time_shift" and task == "forecasting":
            # A forecast reads the window's last steps; rolling them garbles what it predicts.
            raise SpecMismatch(
                "data.augment.time_shift", "forecasting windows keep their time order"
            )


class BatchAugment:
    """Callable on a training batch: (x, y) -> (x augmented, y or the target to rebuild)."""

    def __init__(self, data: DataConfig, kind: str, seed: int, reconstruct: bool = False):
        self.config = data.augment
        self.kind = kind
        self.seed = seed
        self.reconstruct = reconstruct
        self.generator: torch.Generator | None = None

    def start_epoch(self, epoch: int, device: torch.device) -> None:
        # Seeded per epoch, not carried along: a resumed run needs no extra checkpoint state.
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(self.seed * 100_003 + epoch)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.generator is None:
            self.start_epoch(0, x.device)
        shaped = self._image(x) if self.kind == "image" else self._sequence(x)
        noisy = self._noise(shaped)
        return noisy, (shaped.reshape(y.shape) if self.reconstruct else y)

    def _image(self, x: torch.Tensor) -> torch.Tensor:
        config = self.config
        if config.horizontal_flip:
            x = torch.where(self._coin(x, 4), x.flip(3), x)
        if config.vertical_flip:
            x = torch.where(self._coin(x, 4), x.flip(2), x)
        if config.crop_padding:
            x = self._crop(x, config.crop_padding)
        if config.rotation_degrees:
            x = self._rotate(x, config.rotation_degrees)
        return x

    def _sequence(self, x: torch.Tensor) -> torch.Tensor:
        config = self.config
        n, steps, channels = x.shape
        if config.scaling_std:
            factor = 1 + config.scaling_std * self._normal((n, 1, channels), x)
            x = x * factor
        if config.time_shift:
            shift = self._integers(-config.time_shift, config.time_shift, n, x)
            index = (torch.arange(steps, device=x.device)[None, :] - shift[:, None]) % steps
            x = x.gather(1, index[:, :, None].expand(n, steps, channels))
        return x

    def _noise(self, x: torch.Tensor) -> torch.Tensor:
        std = self.config.noise_std + (self.config.jitter_std if self.kind == "sequence" else 0)
        if not std:
            return x
        return x + std * self._normal(x.shape, x)

    def _crop(self, x: torch.Tensor, padding: int) -> torch.Tensor:
        """Pad with zeros (the mean, after standardisation) and cut a window back out."""
        n, _, height, width = x.shape
        padded = F.pad(x, (padding, padding, padding, padding))
        top = self._integers(0, 2 * padding, n, x)
        left = self._integers(0, 2 * padding, n, x)
        rows = top[:, None] + torch.arange(height, device=x.device)  # [N, H]
        cols = left[:, None] + torch.arange(width, device=x.device)  # [N, W]
        batch = torch.arange(n, device=x.device)[:, None, None]
        # Advanced indices around a slice put their dims first: [N, H, W, C].
        out = padded[batch, :, rows[:, :, None], cols[:, None, :]]
        return out.permute(0, 3, 1, 2).contiguous()

    def _rotate(self, x: torch.Tensor, degrees: float) -> torch.Tensor:
        n, _, height, width = x.shape
        angle = (2 * torch.rand(n, generator=self.generator, device=x.device) - 1) * degrees
        angle = angle * (math.pi / 180)
        cos, sin = angle.cos(), angle.sin()
        zero = torch.zeros_like(cos)
        # Rotation in pixels, written in grid_sample's [-1, 1] coordinates of each axis.
        theta = torch.stack(
            [
                torch.stack([cos, -sin * height / width, zero], dim=1),
                torch.stack([sin * width / height, cos, zero], dim=1),
            ],
            dim=1,
        )
        grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    def _coin(self, x: torch.Tensor, rank: int) -> torch.Tensor:
        heads = torch.rand(x.shape[0], generator=self.generator, device=x.device) < 0.5
        return heads.view(-1, *([1] * (rank - 1)))

    def _normal(self, shape: tuple[int, ...] | torch.Size, x: torch.Tensor) -> torch.Tensor:
        return torch.randn(shape, generator=self.generator, device=x.device, dtype=x.dtype)

    def _integers(self, low: int, high: int, n: int, x: torch.Tensor) -> torch.Tensor:
        return torch.randint(low, high + 1, (n,), generator=self.generator, device=x.device)


def build_augment(data: DataConfig, kind: str, task: str, seed: int) -> BatchAugment | None:
    """The batch augmenter a spec asks for, or None (the trainer's fast path) when none."""
    if not active_options(data):
        return None
    check_augment(data, kind, task)
    return BatchAugment(data, kind, seed, reconstruct=task == "reconstruction")
