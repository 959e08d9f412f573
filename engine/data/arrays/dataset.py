"""`ArrayData`, an array dataset in memory: read from an uploaded NPZ, stored in one canonical
NPZ form, and summarised for the dataset record.

Nothing here ever unpickles: every `np.load` runs with `allow_pickle=False`.
"""

from __future__ import annotations

import json
import math
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, Literal

import numpy as np

from engine.errors import DataError

Kind = Literal["image", "sequence", "vector"]
KINDS: tuple[str, ...] = ("image", "sequence", "vector")

# 200M values: 800 MB as float32, the most one worker should hold for one dataset.
DEFAULT_MAX_ELEMENTS = 200_000_000
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
            shape, _, dtype = _read_npy_header(fp)
    except (ValueError, OSError, KeyError, zipfile.BadZipFile) as exc:
        raise DataError(f"array {name!r} is not a readable .npy member ({exc})") from exc
    if dtype.hasobject:
        raise DataError(
            f"array {name!r} holds Python objects (dtype object); only numeric or text arrays "
            "are accepted, pickled data is never loaded"
        )
    return tuple(int(s) for s in shape), dtype


def _read_npy_header(fp: BinaryIO) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran_order, dtype) of a .npy stream, which is left at its first data byte."""
    version = np.lib.format.read_magic(fp)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(fp)
    return np.lib.format.read_array_header_2_0(fp)


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
        meta = _stored_meta(archive)
        x = _load(archive, "x")
        y = _load(archive, "y") if "y" in names else None
        classes = _load(archive, "classes").tolist() if "classes" in names else None
    return ArrayData(x=x, y=y, classes=classes, kind=meta["kind"])


def _stored_meta(archive: np.lib.npyio.NpzFile) -> dict[str, Any]:
    meta = json.loads(str(_load(archive, "meta")[0]))
    if meta.get("version") != STORED_VERSION or meta.get("kind") not in KINDS:
        raise DataError(f"unknown stored array format {meta!r}")
    return meta


class StoredX:
    """The x of a stored array dataset, read a chunk of rows at a time, in order: batch
    prediction over a set larger than a worker's memory holds one chunk, not the whole x.
    The stored form keeps members uncompressed (np.savez), so a chunk is one plain read."""

    def __init__(self, source: BinaryIO) -> None:
        self.archive = _open_npz(source)
        _stored_meta(self.archive)
        self.shape, self.dtype = _peek_header(self.archive, "x")

    @property
    def n(self) -> int:
        return self.shape[0]

    def chunks(self, rows: int) -> Iterator[np.ndarray]:
        with self.archive.zip.open("x.npy") as fp:
            _, fortran_order, _ = _read_npy_header(fp)
            if fortran_order:  # never written so by write_arrays
                raise DataError("the stored x is in Fortran order; it cannot be read by rows")
            for start in range(0, self.n, rows):
                chunk = np.empty((min(rows, self.n - start), *self.shape[1:]), self.dtype)
                view, filled = memoryview(chunk).cast("B"), 0
                while filled < len(view):
                    got = fp.readinto(view[filled:])
                    if not got:
                        raise DataError("the stored x ends before its declared rows")
                    filled += got
                yield chunk


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
