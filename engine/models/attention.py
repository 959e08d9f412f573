"""Attention over time-major sequences [N, T, C]: multi-head self-attention ([T, C] -> [T, C])
and attention pooling ([T, C] -> [C], a learned weighted mean over the steps).

Both take an optional mask [N, T] (True where a step is real, False where it pads the
sequence). A padded step gets exactly zero weight, so whatever it holds cannot change the
output; self-attention also zeroes its own output at padded steps, so a later layer that sums
over time (global_avg_pool, attention_pooling) reads nothing from them. A sequence with no
real step at all gets zero weights everywhere (a zero vector), never NaN.

Only plain tensor operations, so a model with these layers exports to ONNX and TorchScript
like any other.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Softmax over the last axis; positions where `mask` (broadcast to scores) is False get
    weight 0, and a row with no True position is all zeros."""
    if mask is None:
        return torch.softmax(scores, dim=-1)
    # The dtype's lowest value rather than -inf: a row masked everywhere then softmaxes to a
    # uniform row (not NaN), which the multiplication by the mask turns into zeros.
    filled = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    return torch.softmax(filled, dim=-1) * mask.to(scores.dtype)


class SelfAttention(nn.Module):
    """Multi-head scaled dot-product self-attention (Vaswani et al., 2017) without positional
    encoding: queries, keys and values are learned projections of the same steps, each head
    attends over all steps, and an output projection mixes the heads. [N, T, C] -> [N, T, C];
    C must be divisible by `heads`."""

    kind = "self_attention"
    takes_mask = True

    def __init__(self, width: int, heads: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} is not divisible by {heads} heads")
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)
        self.dropout = nn.Dropout(dropout)

    def weights(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The attention weights [N, heads, T (queries), T (keys)]."""
        return self._attend(x, mask)[1]

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self._attend(x, mask)[0]

    def _attend(
        self, x: torch.Tensor, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        n, steps, width = x.shape
        size = width // self.heads
        # [N, T, 3C] -> three of [N, heads, T, size]
        q, k, v = self.qkv(x).view(n, steps, 3, self.heads, size).permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-1, -2) / math.sqrt(size)
        keys = None if mask is None else mask[:, None, None, :]
        weights = masked_softmax(scores, keys)
        mixed = (self.dropout(weights) @ v).transpose(1, 2).reshape(n, steps, width)
        out = self.out(mixed)
        if mask is not None:
            out = out * mask[..., None].to(out.dtype)
        return out, weights


class AttentionPooling(nn.Module):
    """A weighted mean over the steps, the weights a softmax of a learned score per step
    (Bahdanau-style additive attention with `hidden` units, else one linear score):
    [N, T, C] -> [N, C]. Over recurrent outputs it replaces "the last step's state": every
    step can contribute, in proportion to how much it matters."""

    kind = "attention_pooling"
    takes_mask = True

    def __init__(self, width: int, hidden: int | None = None) -> None:
        super().__init__()
        if hidden is None:
            self.score: nn.Module = nn.Linear(width, 1)
        else:
            self.score = nn.Sequential(nn.Linear(width, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def weights(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The weight of each step [N, T]; they sum to 1 over the real steps."""
        return masked_softmax(self.score(x).squeeze(-1), mask)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return (self.weights(x, mask).unsqueeze(-1) * x).sum(dim=1)


class SelfAttentionPooling(nn.Module):
    """The rnn family's `attention: "self"`: x + self-attention(x), then attention pooling."""

    kind = "self_attention_pooling"

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.attention = SelfAttention(width, heads)
        self.pooling = AttentionPooling(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pooling(x + self.attention(x))
