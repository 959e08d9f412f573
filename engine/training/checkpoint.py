"""One checkpoint format: all that `Trainer.fit(resume_from=...)` needs to go on as if never
stopped — model, optimizer, schedule, RNG states, epoch, best metric and weights, early-stopping
and health counters, the history so far, and the spec that made it.

On disk it is a dict under constant keys holding only tensors, numbers, strings, lists and
dicts, written by torch.save and read by torch.load(weights_only=True): nothing in a checkpoint
can run code, so one from the store is as safe to open as a safetensors file.
"""

from __future__ import annotations

import io
import math
import random
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import torch

from engine.errors import EngineError

CHECKPOINT_FORMAT = 1


@dataclass
class Checkpoint:
    epoch: int  # the last finished epoch; a resumed fit starts at epoch + 1
    spec_json: str
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    schedule: dict[str, float]
    rng: dict[str, Any]
    best_loss: float
    best_epoch: int
    best_metrics: dict[str, float]
    best_model: dict[str, torch.Tensor] | None  # kept only when early stopping restores it
    stopped_early: bool
    history: list[dict[str, float]] = field(default_factory=list)
    health: dict[str, Any] = field(default_factory=dict)


class CheckpointError(EngineError):
    code = "bad_checkpoint"


@dataclass
class RunState:
    """What the epochs so far decided; a checkpoint carries all of it."""

    epoch: int = 0
    best_loss: float = math.inf
    best_epoch: int = 0
    best_metrics: dict[str, float] = field(default_factory=dict)
    best_model: dict[str, torch.Tensor] | None = None
    stopped_early: bool = False
    history: list[dict[str, float]] = field(default_factory=list)

    @classmethod
    def from_checkpoint(cls, checkpoint: Checkpoint) -> RunState:
        return cls(
            epoch=checkpoint.epoch,
            best_loss=checkpoint.best_loss,
            best_epoch=checkpoint.best_epoch,
            best_metrics=dict(checkpoint.best_metrics),
            best_model=checkpoint.best_model,
            stopped_early=checkpoint.stopped_early,
            history=[dict(entry) for entry in checkpoint.history],
        )


def capture_checkpoint(
    run: RunState,
    spec_json: str,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: dict[str, float],
    health: dict[str, Any],
    rng: dict[str, Any],
) -> Checkpoint:
    """A checkpoint of the run as it stands, copied so that later steps cannot change it."""
    return Checkpoint(
        epoch=run.epoch,
        spec_json=spec_json,
        model=detached_copy(model.state_dict()),
        optimizer=detached_copy(optimizer.state_dict()),
        schedule=schedule,
        rng=rng,
        best_loss=run.best_loss,
        best_epoch=run.best_epoch,
        best_metrics=dict(run.best_metrics),
        best_model=run.best_model,
        stopped_early=run.stopped_early,
        history=[dict(entry) for entry in run.history],
        health=detached_copy(health),
    )


def checkpoint_to_bytes(checkpoint: Checkpoint) -> bytes:
    state = {f.name: getattr(checkpoint, f.name) for f in fields(checkpoint)}
    buffer = io.BytesIO()
    torch.save({"format": CHECKPOINT_FORMAT, **state}, buffer)
    return buffer.getvalue()


def checkpoint_from_bytes(data: bytes) -> Checkpoint:
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as error:  # a torn or foreign file: say so, never unpickle further
        raise CheckpointError(f"the checkpoint cannot be read: {error}") from error
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"not a checkpoint of format {CHECKPOINT_FORMAT}")
    return Checkpoint(**{f.name: state[f.name] for f in fields(Checkpoint)})


def detached_copy(value: Any) -> Any:
    """A copy that later training steps cannot change: tensors copied to host memory (where a
    checkpoint is written from, and best weights wait without holding device memory)."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: detached_copy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(detached_copy(v) for v in value)
    return value


def capture_rng_states(shuffle: torch.Generator, device: torch.device) -> dict[str, Any]:
    """Every random stream training reads, as tensors and plain values."""
    algorithm, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "shuffle": shuffle.get_state(),
        "numpy": {
            "algorithm": algorithm,
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": {"version": version, "state": list(internal), "gauss": gauss},
    }
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any], shuffle: torch.Generator) -> None:
    torch.set_rng_state(states["torch"])
    shuffle.set_state(states["shuffle"])
    numpy_state = states["numpy"]
    np.random.set_state(
        (
            numpy_state["algorithm"],
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["pos"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    python_state = states["python"]
    random.setstate((python_state["version"], tuple(python_state["state"]), python_state["gauss"]))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
