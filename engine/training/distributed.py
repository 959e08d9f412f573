"""Data-parallel training inside one rank: what `Trainer.fit` does differently when it is one
of several processes (torch.distributed, gloo on CPU, nccl on CUDA).

Every rank holds the whole training set, draws the same shuffled order each epoch (one seeded
generator) and takes its own strided share of it, padded by wrapping around so that every rank
takes the same number of steps (DistributedSampler's rule: a rank with one step fewer would
leave the others waiting in the gradient all-reduce forever). `training.batch_size` stays the
global batch: each rank steps on its share of it, so N ranks take as many steps per epoch as
one process and the learning-rate schedule means what it says. Gradients are averaged by
DistributedDataParallel; the epoch's train loss is averaged once per epoch; every rank scores
the whole validation set, so early stopping and reduce_on_plateau decide alike everywhere.
Checkpoints hold the plain module's state: one format for one rank or many.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class DistributedContext:
    """This process's place in an initialised default process group."""

    rank: int
    world_size: int
    # The GPU of this rank on its node (LOCAL_RANK); unused on CPU.
    local_rank: int = 0

    @classmethod
    def from_process_group(cls, local_rank: int = 0) -> DistributedContext:
        return cls(dist.get_rank(), dist.get_world_size(), local_rank)

    def device(self, requested: torch.device) -> torch.device:
        """One GPU per rank: cuda means this rank's own."""
        if requested.type == "cuda":
            return torch.device("cuda", self.local_rank)
        return requested

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        """The module that runs the training steps: gradients averaged across ranks. (It
        broadcasts rank 0's weights first, so every rank starts from the same model.)"""
        device_ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=device_ids)

    def rows(self, n: int) -> int:
        """Rows each rank trains on per epoch: n shared out, rounded up."""
        return math.ceil(n / self.world_size)

    def batch(self, batch: int) -> int:
        """Each rank's share of the global batch."""
        return math.ceil(batch / self.world_size)

    def shard(self, order: torch.Tensor) -> torch.Tensor:
        """This rank's share of the epoch's order (the same order on every rank): padded by
        wrapping around to a multiple of the world size, then every world_size-th index."""
        n = order.shape[0]
        total = self.rows(n) * self.world_size
        if total > n:
            order = order.repeat(math.ceil(total / n))[:total]
        return order[self.rank : total : self.world_size]

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        """The mean of a per-rank value over the ranks (one all-reduce)."""
        total = value.clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total / self.world_size
