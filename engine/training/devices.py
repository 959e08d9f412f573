"""Where training runs and at what precision: the device a spec asks for, bf16 autocast where
it pays, and the one copy of the data onto the device."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch


def resolve_device(requested: str) -> torch.device:
    if requested == "cuda" or (requested == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """bf16 autocast on CUDA for "auto"; on CPU only when asked, as it is slower there."""
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return None


def describe_compute(
    device: torch.device, dtype: torch.dtype | None, ranks: int = 1
) -> dict[str, Any]:
    """Where a model trained, for its report: what `device: auto` and `precision: auto` chose."""
    return {
        "device": device.type,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "precision": {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, "fp32"),
        "ranks": ranks,
    }


def autocast(device: torch.device, dtype: torch.dtype | None) -> AbstractContextManager:
    """Autocast to `dtype` on `device`; None runs in full precision."""
    if dtype is None:
        return nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    if tensor.device == device:
        return tensor
    if device.type == "cuda" and tensor.device.type == "cpu":
        # Pinned memory lets the one copy of the data run at full bus speed.
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)
