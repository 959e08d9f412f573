"""Predict instances sent as JSON, nested lists shaped like one x, decoded to a float32 batch;
the array and window pipelines both take their instances this way.

A well-formed batch converts in one step; otherwise each instance is read on its own (a base64
image by the `decode_image` the caller passes), so that the bad ones are named, by index, in one
`InvalidInstances`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.errors import InvalidInstances

# A predict request names at most this many bad instances; the rest would only add noise.
MAX_REPORTED_PROBLEMS = 20


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
