"""The array preprocessor: pixel scaling, resizing to the network's image size, per-channel
standardisation and the target's encoding, fitted on the training rows only.

Its state is plain JSON saved as `preprocess.json`, so a model folder alone turns predict
instances (nested JSON lists, or base64 PNG/JPEG for images) into the tensor the network was
trained on.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from engine.data.arrays.dataset import ArrayData
from engine.data.arrays.instances import MAX_REPORTED_PROBLEMS, decode_instances
from engine.errors import DataError, InvalidInstances, SpecMismatch

# Rows go through transform/fit in blocks of about this many values, so a resize or a float
# copy never doubles the memory of a large dataset.
BLOCK_ELEMENTS = 1 << 22


@dataclass
class ArrayTarget:
    """How y is fed to the loss: class indices, standardised numbers, or nothing (autoencoder)."""

    kind: str  # "classes" | "numeric" | "none"
    classes: list = field(default_factory=list)
    mean: float = 0.0
    scale: float = 1.0
    width: int = 1  # outputs per row for a numeric target ([N] -> 1, [N, K] -> K)


@dataclass
class ArrayPreprocessor:
    kind: str
    source_shape: list[int]  # one x as stored, without N
    mean: list[float]  # per channel, after pixel scaling and resizing
    std: list[float]
    pixel_scale: float = 1.0  # 1/255 for uint8 pixels
    image_size: list[int] | None = None  # (H, W) the network sees, when it differs from stored
    # What a 255 pixel of a PNG/JPEG sent at predict time means in the units of the stored x.
    image_value_max: float | None = None
    target: ArrayTarget = field(default_factory=lambda: ArrayTarget("none"))
    # x holds integer codes 0..codes-1 for an embedding layer (token ids), passed unscaled;
    # None for any other x.
    codes: int | None = None

    @property
    def input_shape(self) -> list[int]:
        if self.kind == "image" and self.image_size is not None:
            return [self.source_shape[0], *self.image_size]
        return list(self.source_shape)

    @property
    def output_dim(self) -> int:
        if self.target.kind == "classes":
            return len(self.target.classes)
        if self.target.kind == "numeric":
            return self.target.width
        return math.prod(self.input_shape)

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Stored-form x [N, *source_shape] -> float32 [N, *input_shape], block by block."""
        if list(x.shape[1:]) != self.source_shape:
            raise DataError(
                f"x has shape {list(x.shape[1:])} per row; this model takes {self.source_shape}"
            )
        out = np.empty((x.shape[0], *self.input_shape), dtype=np.float32)
        mean, std = self._channel_tensor(self.mean), self._channel_tensor(self.std)
        for start, stop in _blocks(x):
            block = self._scaled(x[start:stop])
            out[start:stop] = ((block - mean) / std).numpy()
        return out

    def encode_target(self, data: ArrayData) -> np.ndarray:
        """y as the loss wants it: int64 indices into the fitted classes (-1 for an unseen
        class), or float32 standardised numbers."""
        if self.target.kind == "classes":
            if data.y is None or data.classes is None:
                raise DataError("the dataset has no class labels in array 'y'")
            lookup = {label: i for i, label in enumerate(self.target.classes)}
            mapping = np.array([lookup.get(c, -1) for c in data.classes], dtype=np.int64)
            return mapping[data.y]
        if self.target.kind == "numeric":
            values = data.numeric_target()
            return ((values - self.target.mean) / self.target.scale).astype(np.float32)
        raise DataError("this model has no target to encode")

    def decode_regression(self, values: np.ndarray) -> np.ndarray:
        return values * self.target.scale + self.target.mean

    def instances_to_array(self, instances: list) -> np.ndarray:
        """Predict instances -> float32 [N, *source_shape] in stored units, ready for
        `transform`. Nested lists shaped like one x; for images also base64 PNG/JPEG."""
        decode_image = None
        if self.kind == "image":
            # Pillow is imported only when an image model meets an image instance.
            from engine.data.images import decode_image_instance

            channels, height, width = self.source_shape
            value_max = self.image_value_max or 255.0

            def decode_image(value: Any) -> np.ndarray:
                pixels = decode_image_instance(value, channels, (height, width))
                return pixels.astype(np.float32) * np.float32(value_max / 255.0)

        x = decode_instances(instances, self.source_shape, decode_image)
        if self.codes is not None:
            _check_codes(x, self.codes)
        return x

    def to_dict(self) -> dict[str, Any]:
        return {"version": 1, "type": "arrays", **asdict(self)}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> ArrayPreprocessor:
        state = {k: v for k, v in state.items() if k not in ("version", "type")}
        return cls(**{**state, "target": ArrayTarget(**state["target"])})

    def _channel_tensor(self, values: list[float]) -> torch.Tensor:
        shape = {"image": (1, -1, 1, 1), "sequence": (1, 1, -1), "vector": (1, -1)}[self.kind]
        return torch.tensor(values, dtype=torch.float32).reshape(shape)

    def _scaled(self, block: np.ndarray) -> torch.Tensor:
        """Pixel scaling and resizing: everything before standardisation."""
        tensor = torch.from_numpy(np.ascontiguousarray(block)).to(torch.float32)
        if self.pixel_scale != 1.0:
            tensor = tensor * self.pixel_scale
        if self.kind == "image" and self.input_shape != self.source_shape:
            tensor = F.interpolate(
                tensor, size=tuple(self.input_shape[1:]), mode="bilinear", antialias=True
            )
        return tensor


def fit_array_preprocessor(
    data: ArrayData,
    train_index: np.ndarray,
    image_size: tuple[int, int] | None = None,
    task: str | None = None,
    codes: int | None = None,
) -> ArrayPreprocessor:
    """Statistics from the training rows only, so nothing leaks from held-out rows.

    `task` picks the target encoding (classification, regression, reconstruction); None infers
    it from y: labels -> classes, numbers -> numeric, no y -> none. `codes`: x holds integer
    codes 0..codes-1 for an embedding layer (token ids, 0 often padding), passed through
    unscaled; predict instances outside them are refused.
    """
    train_index = np.asarray(train_index, dtype=np.int64)
    if train_index.size == 0:
        raise DataError("no training rows to fit the preprocessing on")
    if image_size is not None and data.kind != "image":
        raise SpecMismatch(
            "data.image_size", f"applies to image datasets; this one holds {data.kind}s"
        )
    source_shape = [int(s) for s in data.x.shape[1:]]
    size = list(image_size) if image_size is not None else None
    if size == source_shape[1:]:
        size = None
    pixels = data.kind == "image" and data.x.dtype == np.uint8
    value_max = None
    if data.kind == "image":
        # Float images in [0, 1] map a 255 pixel to 1.0; others (0..16 digits) to their max.
        value_max = 255.0 if pixels else max(1.0, float(data.x[train_index].max()))
    preprocessor = ArrayPreprocessor(
        kind=data.kind,
        source_shape=source_shape,
        mean=[],
        std=[],
        pixel_scale=1.0 / 255.0 if pixels else 1.0,
        image_size=size,
        image_value_max=value_max,
        target=_fit_target(data, train_index, task),
        codes=codes,
    )
    if codes is not None:
        width = source_shape[-1] if data.kind != "image" else source_shape[0]
        preprocessor.mean, preprocessor.std = [0.0] * width, [1.0] * width
    else:
        preprocessor.mean, preprocessor.std = _channel_stats(preprocessor, data.x, train_index)
    return preprocessor


def _check_codes(x: np.ndarray, codes: int) -> None:
    """Every instance's values must be integer codes 0..codes-1, as the embedding reads them."""
    flat = x.reshape(len(x), -1)
    bad = ~((flat == np.round(flat)) & (flat >= 0) & (flat < codes)).all(axis=1)
    if bad.any():
        raise InvalidInstances(
            [
                {
                    "field": f"instances[{i}]",
                    "reason": f"expected integer codes 0..{codes - 1} (the embedding's)",
                }
                for i in np.flatnonzero(bad)[:MAX_REPORTED_PROBLEMS]
            ]
        )


def _channel_stats(
    preprocessor: ArrayPreprocessor, x: np.ndarray, rows: np.ndarray
) -> tuple[list[float], list[float]]:
    """Per-channel mean/std over blocks of training rows, merged with Chan's formula so memory
    stays one block however large the dataset."""
    axes = {"image": (0, 2, 3), "sequence": (0, 1), "vector": (0,)}[preprocessor.kind]
    count, mean, m2 = 0, 0.0, 0.0
    for start, stop in _blocks(x, len(rows)):
        block = preprocessor._scaled(x[rows[start:stop]]).double()
        n_block = block.numel() // block.shape[1 if preprocessor.kind == "image" else -1]
        block_mean = block.mean(dim=axes)
        block_m2 = ((block - _keep(block_mean, preprocessor.kind)) ** 2).sum(dim=axes)
        total = count + n_block
        delta = block_mean - mean
        mean = mean + delta * (n_block / total)
        m2 = m2 + block_m2 + delta**2 * (count * n_block / total)
        count = total
    std = torch.sqrt(m2 / count)
    # A constant channel would divide by zero; leave it centred and unscaled instead.
    std = torch.where(std > 1e-6, std, torch.ones_like(std))
    return [float(v) for v in mean], [float(v) for v in std]


def _keep(channel_values: torch.Tensor, kind: str) -> torch.Tensor:
    shape = {"image": (1, -1, 1, 1), "sequence": (1, 1, -1), "vector": (1, -1)}[kind]
    return channel_values.reshape(shape)


def _fit_target(data: ArrayData, train_index: np.ndarray, task: str | None) -> ArrayTarget:
    if task is None:
        task = (
            "reconstruction"
            if data.y is None
            else "classification"
            if data.classes is not None
            else "regression"
        )
    if task == "reconstruction" or task == "forecasting":
        return ArrayTarget("none")
    if data.y is None:
        raise SpecMismatch("task", f"{task!r} needs a target: the dataset has no array 'y'")
    if task == "classification":
        if data.classes is None:
            raise SpecMismatch(
                "task", "array 'y' holds real numbers; use task 'regression' or give class labels"
            )
        present = np.unique(data.y[train_index])
        if len(present) < 2:
            raise DataError("array 'y' has fewer than 2 classes in the training rows")
        return ArrayTarget("classes", classes=[data.classes[i] for i in present])
    values = data.numeric_target()[train_index]
    std = float(values.std())
    return ArrayTarget(
        "numeric",
        mean=float(values.mean()),
        scale=std if std > 1e-12 else 1.0,
        width=1 if values.ndim == 1 else int(values.shape[1]),
    )


def _blocks(x: np.ndarray, n: int | None = None) -> list[tuple[int, int]]:
    n = x.shape[0] if n is None else n
    per_row = max(1, math.prod(x.shape[1:]))
    step = max(1, BLOCK_ELEMENTS // per_row)
    return [(start, min(start + step, n)) for start in range(0, n, step)]
