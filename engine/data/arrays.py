"""Array datasets (NPZ uploads, image ZIPs) and their preprocessing for CNN/RNN/autoencoders.

An upload becomes an `ArrayData` (x shaped per kind, y as class indices or numbers), stored in
one canonical NPZ form. `ArrayPreprocessor` is fitted on the training rows only; its state is
plain JSON saved as `preprocess.json`, so a model folder alone turns predict instances (nested
JSON lists, or base64 PNG/JPEG for images) into the tensor the network was trained on.
Nothing here ever unpickles: every `np.load` runs with `allow_pickle=False`.
"""

from __future__ import annotations

import json
import math
import zipfile
from dataclasses import asdict, dataclass, field
from typing import Any, BinaryIO, Literal

import numpy as np
import torch
import torch.nn.functional as F

from engine.errors import DataError, InvalidInstances, SpecMismatch

Kind = Literal["image", "sequence", "vector"]
KINDS: tuple[str, ...] = ("image", "sequence", "vector")

# 200M values: 800 MB as float32, the most one worker should hold for one dataset.
DEFAULT_MAX_ELEMENTS = 200_000_000
# Rows go through transform/fit in blocks of about this many values, so a resize or a float
# copy never doubles the memory of a large dataset.
BLOCK_ELEMENTS = 1 << 22
# A predict request names at most this many bad instances; the rest would only add noise.
MAX_REPORTED_PROBLEMS = 20
NUMERIC_KINDS = "biuf"


@dataclass
class ArrayData:
    """x: image [N, C, H, W], sequence [N, T, C] or vector [N, D]; float32, or uint8 pixels.

    y: int64 indices into `classes` for class labels, float32 for numeric targets, or None.
    """

    x: np.ndarray
    y: np.ndarray | None
    classes: list | None
    kind: Kind

    @property
    def n(self) -> int:
        return int(self.x.shape[0])

    def numeric_target(self) -> np.ndarray:
        """y as float32 numbers, for regression: integer labels turn back into their values."""
        if self.y is None:
            raise DataError("the dataset has no array 'y'")
        if self.classes is None:
            return self.y.astype(np.float32, copy=False)
        if not all(isinstance(c, int | float) for c in self.classes):
            raise DataError("array 'y' holds text labels; a numeric target is needed")
        return np.asarray(self.classes, dtype=np.float32)[self.y]


# --- reading uploads ------------------------------------------------------------------------


def read_npz(
    source: BinaryIO, max_elements: int = DEFAULT_MAX_ELEMENTS, kind: Kind | None = None
) -> ArrayData:
    """An uploaded NPZ with `x` and optional `y` (and optional `kind`, a string) -> ArrayData.

    x [N, D] is a vector, [N, C, H, W] (or channels-last [N, H, W, C]) an image. Rank 3 is
    ambiguous: [N, H, W] is read as a 1-channel image when x is uint8 or H == W, else as a
    sequence [N, T, C]; `kind` (the argument, or a `kind` array in the file) settles it.
    """
    archive = _open_npz(source)
    with archive:
        names = set(archive.files)
        if "x" not in names:
            found = ", ".join(sorted(names)) or "nothing"
            raise DataError(f"the NPZ has no array named 'x' (found: {found})")
        headers = {name: _peek_header(archive, name) for name in ("x", "y") if name in names}
        total = sum(math.prod(shape) for shape, _ in headers.values())
        if total > max_elements:
            raise DataError(
                f"the arrays hold {total:,} values; the limit is {max_elements:,} per dataset"
            )
        x_shape, x_dtype = headers["x"]
        if x_dtype.kind not in NUMERIC_KINDS:
            raise DataError(f"array 'x' has dtype {x_dtype}; it must hold numbers")
        if "y" in headers and headers["y"][1].kind not in NUMERIC_KINDS + "US":
            raise DataError(f"array 'y' has dtype {headers['y'][1]}; it must hold numbers or text")
        if kind is None and "kind" in names:
            kind = _kind_from_file(_load(archive, "kind"))
        x = _shape_x(_load(archive, "x"), kind)
        y, classes = _read_y(_load(archive, "y"), x.shape[0]) if "y" in names else (None, None)
    return ArrayData(x=x, y=y, classes=classes, kind=_kind_of(x, kind))


def _open_npz(source: BinaryIO) -> np.lib.npyio.NpzFile:
    try:
        loaded = np.load(source, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        # np.load refuses a pickle with ValueError: that is the refusal we want, worded for users.
        raise DataError(f"not a readable NPZ archive ({exc})") from exc
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise DataError("expected an NPZ archive (np.savez) holding 'x'; got a single .npy array")
    return loaded


def _peek_header(archive: np.lib.npyio.NpzFile, name: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from the .npy header, before a byte of data is read: a compressed NPZ can
    declare an array far larger than the upload, and the size guard must run first."""
    members = archive.zip.namelist()
    member = f"{name}.npy" if f"{name}.npy" in members else name
    try:
        with archive.zip.open(member) as fp:
            version = np.lib.format.read_magic(fp)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(fp)
            else:
                shape, _, dtype = np.lib.format.read_array_header_2_0(fp)
    except (ValueError, OSError, KeyError, zipfile.BadZipFile) as exc:
        raise DataError(f"array {name!r} is not a readable .npy member ({exc})") from exc
    if dtype.hasobject:
        raise DataError(
            f"array {name!r} holds Python objects (dtype object); only numeric or text arrays "
            "are accepted, pickled data is never loaded"
        )
    return tuple(int(s) for s in shape), dtype


def _load(archive: np.lib.npyio.NpzFile, name: str) -> np.ndarray:
    try:
        return archive[name]
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"array {name!r} cannot be read ({exc})") from exc


def _kind_from_file(value: np.ndarray) -> Kind:
    if value.dtype.kind != "U" or value.size != 1:
        raise DataError(f"array 'kind' must be one string, one of {', '.join(KINDS)}")
    text = str(value.reshape(-1)[0])
    if text not in KINDS:
        raise DataError(f"array 'kind' is {text!r}; expected one of {', '.join(KINDS)}")
    return text  # type: ignore[return-value]


def _shape_x(x: np.ndarray, kind: Kind | None) -> np.ndarray:
    if x.ndim == 0 or x.shape[0] == 0:
        raise DataError("array 'x' has no rows")
    if x.ndim == 1 or x.ndim > 4:
        raise DataError(
            f"array 'x' has shape {list(x.shape)}; expected [N, D], [N, T, C], [N, H, W] or "
            "[N, C, H, W]"
        )
    if kind == "vector" and x.ndim != 2:
        raise DataError(f"array 'x' has shape {list(x.shape)}; a vector dataset needs [N, D]")
    if kind == "sequence":
        if x.ndim == 4:
            raise DataError(f"array 'x' has shape {list(x.shape)}; a sequence needs [N, T, C]")
        if x.ndim == 2:
            x = x[:, :, None]  # [N, T] is one channel over time
    if kind == "image" and x.ndim == 2:
        raise DataError(f"array 'x' has shape {list(x.shape)}; an image needs [N, H, W] or more")
    if _kind_of(x, kind) == "image":
        if x.ndim == 3:
            x = x[:, None]
        elif x.shape[1] not in (1, 3, 4) and x.shape[3] in (1, 3, 4):
            # Channels-last ([N, 32, 32, 3], the Keras/PIL habit): read as [N, C, H, W], since
            # 32 "channels" of 32x3 pixels is never what was meant.
            x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    if x.dtype != np.uint8:
        x = x.astype(np.float32, copy=False)
        finite = np.isfinite(x)
        if not finite.all():
            bad = x.size - int(np.count_nonzero(finite))
            raise DataError(f"array 'x' has {bad:,} NaN or infinite values")
    return x


def _kind_of(x: np.ndarray, kind: Kind | None) -> Kind:
    if kind is not None:
        return kind
    if x.ndim == 2:
        return "vector"
    if x.ndim == 4:
        return "image"
    return "image" if x.dtype == np.uint8 or x.shape[1] == x.shape[2] else "sequence"


def _read_y(y: np.ndarray, n: int) -> tuple[np.ndarray, list | None]:
    if y.ndim == 0 or y.shape[0] != n:
        rows = 0 if y.ndim == 0 else y.shape[0]
        raise DataError(f"array 'y' has {rows} rows but array 'x' has {n}")
    if y.dtype.kind == "f":
        if y.ndim > 2:
            raise DataError(f"array 'y' has shape {list(y.shape)}; expected [N] or [N, K]")
        y = y.astype(np.float32, copy=False)
        if not np.isfinite(y).all():
            raise DataError("array 'y' has NaN or infinite values")
        return y, None
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(
            f"array 'y' has shape {list(y.shape)}; class labels must be one per row, shape [N]"
        )
    if y.dtype.kind == "S":
        y = y.astype(np.str_)
    classes, index = np.unique(y, return_inverse=True)
    return index.reshape(-1).astype(np.int64), classes.tolist()


# --- canonical stored form ------------------------------------------------------------------

STORED_VERSION = 1


def write_arrays(data: ArrayData, sink: BinaryIO) -> None:
    """The stored form: an NPZ of plain arrays (x, y, classes) and a JSON `meta` string."""
    meta = json.dumps({"version": STORED_VERSION, "kind": data.kind})
    payload: dict[str, np.ndarray] = {"x": data.x, "meta": np.array([meta])}
    if data.y is not None:
        payload["y"] = data.y
    if data.classes is not None:
        payload["classes"] = np.asarray(data.classes)
    np.savez(sink, **payload)


def read_arrays(source: BinaryIO) -> ArrayData:
    archive = _open_npz(source)
    with archive:
        names = set(archive.files)
        if not {"x", "meta"} <= names:
            raise DataError("not a stored array dataset: 'x' or 'meta' is missing")
        meta = json.loads(str(_load(archive, "meta")[0]))
        if meta.get("version") != STORED_VERSION or meta.get("kind") not in KINDS:
            raise DataError(f"unknown stored array format {meta!r}")
        x = _load(archive, "x")
        y = _load(archive, "y") if "y" in names else None
        classes = _load(archive, "classes").tolist() if "classes" in names else None
    return ArrayData(x=x, y=y, classes=classes, kind=meta["kind"])


def summarise(data: ArrayData) -> dict[str, Any]:
    """What the dataset record shows: kind, size, shape of one x, and the target's make-up."""
    summary: dict[str, Any] = {
        "kind": data.kind,
        "n": data.n,
        "shape": [int(s) for s in data.x.shape[1:]],
        "dtype": str(data.x.dtype),
        "min": float(data.x.min()),
        "max": float(data.x.max()),
        "target": None,
    }
    if data.y is not None and data.classes is not None:
        counts = np.bincount(data.y, minlength=len(data.classes))
        summary["target"] = {
            "type": "classes",
            "classes": [
                {"label": label, "count": int(c)}
                for label, c in zip(data.classes, counts, strict=True)
            ],
        }
    elif data.y is not None:
        summary["target"] = {
            "type": "numeric",
            "shape": [int(s) for s in data.y.shape[1:]],
            "min": float(data.y.min()),
            "max": float(data.y.max()),
        }
    return summary


# --- preprocessing --------------------------------------------------------------------------


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

        return decode_instances(instances, self.source_shape, decode_image)

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
) -> ArrayPreprocessor:
    """Statistics from the training rows only, so nothing leaks from held-out rows.

    `task` picks the target encoding (classification, regression, reconstruction); None infers
    it from y: labels -> classes, numbers -> numeric, no y -> none.
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
    )
    preprocessor.mean, preprocessor.std = _channel_stats(preprocessor, data.x, train_index)
    return preprocessor


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


# --- predict-time decoding ------------------------------------------------------------------


def decode_instances(
    instances: list, shape: list[int], decode_image: Any | None = None
) -> np.ndarray:
    """JSON instances -> float32 [N, *shape]. A 1-channel image may come as [H, W];
    `decode_image` (value -> array shaped `shape`) handles base64 strings and {"b64": ...}.
    Every bad instance is named in one InvalidInstances."""
    if not isinstance(instances, list) or not instances:
        raise InvalidInstances([{"field": "instances", "reason": "expected a non-empty list"}])
    if all(isinstance(i, list) for i in instances):
        fast = _as_batch(instances, shape)
        if fast is not None:
            return fast
    out = np.empty((len(instances), *shape), dtype=np.float32)
    problems: list[dict] = []
    for i, instance in enumerate(instances):
        try:
            if isinstance(instance, str | dict):
                if decode_image is None:
                    raise _Bad("base64 images are accepted by image models only")
                out[i] = decode_image(instance)
            else:
                out[i] = _one_instance(instance, shape)
        except _Bad as bad:
            problems.append({"field": f"instances[{i}]", "reason": str(bad)})
        except InvalidInstances as bad:
            problems.extend({**p, "field": f"instances[{i}]"} for p in bad.problems)
        if len(problems) >= MAX_REPORTED_PROBLEMS:
            break
    if problems:
        raise InvalidInstances(problems)
    return out


class _Bad(Exception):
    """One instance's problem, collected into InvalidInstances with its index."""


def _as_batch(instances: list, shape: list[int]) -> np.ndarray | None:
    """The whole batch at once when it is well formed (the common case); None sends it to the
    per-instance path that names what is wrong."""
    try:
        batch = np.asarray(instances)
    except ValueError:
        return None  # ragged
    if batch.dtype.kind not in "iuf":
        return None
    if list(batch.shape[1:]) != shape:
        if not _is_plain_image(shape) or list(batch.shape[1:]) != shape[1:]:
            return None
        batch = batch[:, None]
    batch = batch.astype(np.float32)
    return batch if np.isfinite(batch).all() else None


def _one_instance(instance: Any, shape: list[int]) -> np.ndarray:
    try:
        array = np.asarray(instance)
    except ValueError:
        raise _Bad(f"expected a rectangular array of numbers shaped {_expected(shape)}") from None
    if array.dtype.kind not in "iuf" or array.ndim == 0:
        raise _Bad(f"expected an array of numbers shaped {_expected(shape)}")
    if list(array.shape) != shape:
        if not (_is_plain_image(shape) and list(array.shape) == shape[1:]):
            raise _Bad(f"expected shape {_expected(shape)}, got {list(array.shape)}")
        array = array[None]
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise _Bad("holds a NaN or infinite value")
    return array


def _is_plain_image(shape: list[int]) -> bool:
    return len(shape) == 3 and shape[0] == 1


def _expected(shape: list[int]) -> str:
    if _is_plain_image(shape):
        return f"{shape[1:]} or {shape}"
    return str(shape)
