"""Images: a ZIP with one folder per class read into an `ArrayData`, and base64 images sent for
prediction decoded to the training shape. Both use Pillow, in memory only.

A ZIP is untrusted: nothing is extracted to disk, member paths that could escape a folder are
refused, and sizes are checked against the limits before a member is decompressed or decoded.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import zipfile
import zlib
from collections import Counter
from typing import Any, BinaryIO, NoReturn

import numpy as np
from PIL import Image, UnidentifiedImageError

from engine.data.arrays.dataset import DEFAULT_MAX_ELEMENTS, ArrayData
from engine.errors import DataError, InvalidInstances

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
ACCEPTED_FORMATS = ("PNG", "JPEG")
# One image file; a photo from a phone is under 16 MB.
MAX_MEMBER_BYTES = 32 << 20
# All image files together, uncompressed, as the ZIP declares them (zipfile never yields more
# bytes than declared, so the declared sizes bound what is read).
MAX_TOTAL_BYTES = 4 << 30
# Decoded pixels per image: a tiny PNG can declare a 100k x 100k canvas (a pixel bomb).
MAX_IMAGE_PIXELS = 4096 * 4096
# A base64 instance sent to predict: 16 MB of text, about 12 MB of image.
MAX_BASE64_CHARS = 16 << 20
GRAYSCALE_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
CHANNEL_MODES = {1: "L", 3: "RGB", 4: "RGBA"}
_ZIP_READ_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    RuntimeError,  # an encrypted member
    NotImplementedError,  # a compression method zipfile cannot read
    EOFError,
    OSError,
)
_DECODE_ERRORS = (
    UnidentifiedImageError,
    Image.DecompressionBombError,
    OSError,
    ValueError,
    SyntaxError,  # Pillow's PNG plugin raises it for some malformed chunks
)


def read_image_zip(
    source: BinaryIO,
    max_images: int = 100_000,
    size: tuple[int, int] | None = None,
    *,
    max_member_bytes: int = MAX_MEMBER_BYTES,
    max_total_bytes: int = MAX_TOTAL_BYTES,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> ArrayData:
    """`cats/1.png` or `root/cats/1.png` -> uint8 x [N, C, H, W] with class = folder name.

    All images share one mode (L when every image is grayscale, else RGB) and one size: `size`
    (H, W), or the most common size among the images.
    """
    try:
        archive = zipfile.ZipFile(source)
    except _ZIP_READ_ERRORS as exc:
        raise DataError(f"not a readable ZIP archive ({exc})") from exc
    with archive:
        members = _image_members(archive, max_member_bytes, max_total_bytes)
        if len(members) > max_images:
            raise DataError(f"the ZIP holds {len(members):,} images; the limit is {max_images:,}")
        classes = sorted({label for _, label in members})
        if len(classes) < 2:
            raise DataError(
                f"the ZIP has one class folder ({classes[0]!r}); classification needs at least "
                "two folders of images"
            )
        headers = [_image_header(archive, info, max_member_bytes) for info, _ in members]
        mode = "L" if all(m in GRAYSCALE_MODES for m, _ in headers) else "RGB"
        if size is None:
            width, height = Counter(s for _, s in headers).most_common(1)[0][0]
        else:
            height, width = size
        channels = 1 if mode == "L" else 3
        elements = len(members) * channels * height * width
        if elements > max_elements:
            raise DataError(
                f"{len(members):,} images of {channels}x{height}x{width} hold {elements:,} "
                f"values; the limit is {max_elements:,}: choose a smaller image_size"
            )
        x = np.empty((len(members), channels, height, width), dtype=np.uint8)
        for i, (info, _) in enumerate(members):
            data = _read_member(archive, info, max_member_bytes)
            try:
                with Image.open(io.BytesIO(data)) as image:
                    x[i] = _pixels(image, mode, (height, width))
            except _DECODE_ERRORS as exc:
                raise DataError(f"{info.filename!r} cannot be decoded ({exc})") from exc
    index = {label: i for i, label in enumerate(classes)}
    y = np.array([index[label] for _, label in members], dtype=np.int64)
    return ArrayData(x=x, y=y, classes=classes, kind="image")


def _image_members(
    archive: zipfile.ZipFile, max_member_bytes: int, max_total_bytes: int
) -> list[tuple[zipfile.ZipInfo, str]]:
    """(member, class) for every image, sorted by path so rows come in a stable order."""
    found: list[tuple[zipfile.ZipInfo, list[str]]] = []
    total = 0
    for info in archive.infolist():
        name = info.filename.replace("\\", "/")
        parts = [p for p in name.split("/") if p not in ("", ".")]
        # Refused even though nothing is extracted: such a member is a crafted archive, and
        # the folder names become class labels that are shown to users.
        if name.startswith("/") or re.match(r"[A-Za-z]:", name) or ".." in parts:
            raise DataError(f"ZIP member {info.filename!r} has an unsafe path (absolute or '..')")
        if info.is_dir() or not parts or parts[0] == "__MACOSX":
            continue
        if any(p.startswith(".") for p in parts) or not parts[-1].lower().endswith(
            IMAGE_EXTENSIONS
        ):
            continue
        if info.file_size > max_member_bytes:
            raise DataError(
                f"ZIP member {info.filename!r} is {info.file_size:,} bytes uncompressed; the "
                f"limit is {max_member_bytes:,} per image"
            )
        total += info.file_size
        if total > max_total_bytes:
            raise DataError(
                f"the images total more than {max_total_bytes:,} bytes uncompressed; the limit "
                "guards against ZIP bombs"
            )
        found.append((info, parts))
    if not found:
        raise DataError("the ZIP holds no PNG or JPEG images")
    depths = {len(parts) for _, parts in found}
    if depths == {2}:
        labelled = [(info, parts[0]) for info, parts in found]
    elif depths == {3} and len({parts[0] for _, parts in found}) == 1:
        labelled = [(info, parts[1]) for info, parts in found]
    else:
        example = next(info.filename for info, parts in found if len(parts) != 2)
        raise DataError(
            "images must sit in one folder per class ('cats/1.png' or 'root/cats/1.png'); "
            f"found {example!r}"
        )
    return sorted(labelled, key=lambda item: item[0].filename)


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    try:
        with archive.open(info) as member:
            data = member.read(limit + 1)
    except _ZIP_READ_ERRORS as exc:
        raise DataError(f"ZIP member {info.filename!r} cannot be read ({exc})") from exc
    if len(data) > limit:
        raise DataError(f"ZIP member {info.filename!r} is larger than {limit:,} bytes")
    return data


def _image_header(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int
) -> tuple[str, tuple[int, int]]:
    """Mode and (width, height) from the header only: Pillow decodes pixels lazily."""
    data = _read_member(archive, info, limit)
    try:
        with Image.open(io.BytesIO(data)) as image:
            problem = _unacceptable(image)
            mode, image_size = image.mode, image.size
    except _DECODE_ERRORS as exc:
        raise DataError(f"{info.filename!r} is not a readable PNG or JPEG image ({exc})") from exc
    if problem:
        raise DataError(f"{info.filename!r}: {problem}")
    return mode, image_size


def _unacceptable(image: Image.Image) -> str | None:
    if image.format not in ACCEPTED_FORMATS:
        return f"only PNG and JPEG images are accepted, got {image.format}"
    if image.width * image.height > MAX_IMAGE_PIXELS:
        return (
            f"{image.width}x{image.height} pixels is more than the {MAX_IMAGE_PIXELS:,} "
            "allowed per image"
        )
    return None


def _pixels(image: Image.Image, mode: str, size: tuple[int, int]) -> np.ndarray:
    """One image -> uint8 [C, H, W] in `mode`, resized to `size` (H, W)."""
    height, width = size
    # JPEG only: decode at a reduced scale when the target is much smaller (a free speed-up).
    image.draft(mode, (width, height))
    image = image.convert(mode)
    if image.size != (width, height):
        image = image.resize((width, height), Image.Resampling.BILINEAR)
    array = np.asarray(image)
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def decode_image_instance(value: Any, channels: int, size: tuple[int, int]) -> np.ndarray:
    """A predict instance given as a base64 PNG/JPEG string (or a data URL, or {"b64": ...})
    -> uint8 [channels, H, W], converted and resized like the training images."""
    if isinstance(value, dict):
        if set(value) != {"b64"} or not isinstance(value["b64"], str):
            _refuse('expected {"b64": "<base64 PNG or JPEG>"}')
        value = value["b64"]
    if value.startswith("data:"):
        value = value.partition(",")[2]
    if len(value) > MAX_BASE64_CHARS:
        _refuse(f"the image is larger than {MAX_BASE64_CHARS:,} base64 characters")
    mode = CHANNEL_MODES.get(channels)
    if mode is None:
        _refuse(f"this model takes {channels}-channel images as nested lists only")
    try:
        # Line breaks (MIME style) and the URL-safe alphabet are both common in the wild.
        text = "".join(value.split()).translate(str.maketrans("-_", "+/"))
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        _refuse("not valid base64")
    try:
        with Image.open(io.BytesIO(raw)) as image:
            problem = _unacceptable(image)
            if problem is None:
                return _pixels(image, mode, size)
    except _DECODE_ERRORS:
        problem = "not a decodable PNG or JPEG image"
    _refuse(problem)


def _refuse(reason: str) -> NoReturn:
    # The caller (arrays.instances.decode_instances) puts the instance index into `field`.
    raise InvalidInstances([{"field": "instance", "reason": reason}])
