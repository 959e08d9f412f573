"""Learned embeddings for table columns encoded as category codes.

A table pipeline may hand the model some input positions that hold integer category codes
(`data.preprocess` encoding `embedding`) instead of values. `InputEmbeddings` looks each code
up in its own table and puts the vectors after the remaining numeric inputs, so the family's
network sees an ordinary feature vector [F - k + sum(dims)]. Code 0 is reserved for unseen
and missing categories; it is trained like any other row of the table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class EmbeddedInput:
    """An input position holding a category code in [0, cardinality), embedded in `dim`."""

    position: int
    cardinality: int
    dim: int


class InputEmbeddings(nn.Module):
    """[N, F] with k code positions -> [N, F - k + sum(dims)]: values first, then vectors."""

    kind = "embedding"

    def __init__(self, width: int, embedded: Sequence[EmbeddedInput]) -> None:
        super().__init__()
        codes = [e.position for e in embedded]
        values = sorted(set(range(width)) - set(codes))
        # Not persistent: the positions come from the pipeline, which rebuilds them; the
        # weights file holds only the tables.
        self.register_buffer("codes_at", torch.tensor(codes, dtype=torch.long), persistent=False)
        self.register_buffer("values_at", torch.tensor(values, dtype=torch.long), persistent=False)
        self.tables = nn.ModuleList(nn.Embedding(e.cardinality, e.dim) for e in embedded)
        self.output_width = len(values) + sum(e.dim for e in embedded)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        codes = x.index_select(1, self.codes_at).long()
        parts = [x.index_select(1, self.values_at)]
        for i, table in enumerate(self.tables):
            # The fitted pipeline never gives a code past the table; clamping keeps a
            # hand-made input from indexing out of range.
            parts.append(table(codes[:, i].clamp(0, table.num_embeddings - 1)))
        return torch.cat(parts, dim=1)


def embedded_width(width: int, embedded: Sequence[EmbeddedInput]) -> int:
    """The width the family's network sees once the codes are replaced by their vectors."""
    return width - len(embedded) + sum(e.dim for e in embedded)


def with_embeddings(
    network: nn.Module, width: int, embedded: Sequence[EmbeddedInput]
) -> nn.Sequential:
    """The network behind an embedding lookup, as one flat `nn.Sequential` when the network
    is one (so the layer table reads `embedding`, `dense`, ... row by row)."""
    layers = list(network) if type(network) is nn.Sequential else [network]
    return nn.Sequential(InputEmbeddings(width, embedded), *layers)
