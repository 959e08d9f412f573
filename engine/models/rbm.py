"""A restricted Boltzmann machine (RBM): visible units v, hidden units h, one weight matrix.

The energy of a joint state is

    bernoulli visible:  E(v, h) = -b.v - c.h - h.W v
    gaussian visible:   E(v, h) = |v - b|^2 / 2 - c.h - h.W v   (unit variance)

so, given the other layer, every unit is independent:

    p(h = 1 | v) = sigmoid(W v + c)
    p(v = 1 | h) = sigmoid(W^T h + b)       (bernoulli)
    v | h ~ Normal(W^T h + b, 1)             (gaussian: for standardised real inputs)

`W` is [hidden, visible], as the weight of `nn.Linear(visible, hidden)`, and `c` is that
layer's bias: `hidden_probabilities(v)` is exactly `sigmoid(linear(v))`, which is why a trained
RBM can initialise a sigmoid layer of an MLP (engine/training/pretraining.py).

Training maximises the likelihood of the data by contrastive divergence (Hinton, 2002): the
gradient of the log-likelihood is <v h>_data - <v h>_model, and the model's expectation is
estimated from a short Gibbs chain, k steps long, started at the data (CD-k) or carried on
from where the previous update left it (persistent CD, Tieleman 2008). Everything here runs
under `torch.no_grad()`: the gradient is that difference, not autograd's.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional

VISIBLE_TYPES = ("bernoulli", "gaussian")


class RBM(nn.Module):
    def __init__(self, visible: int, hidden: int, visible_type: str = "bernoulli") -> None:
        super().__init__()
        if visible_type not in VISIBLE_TYPES:
            raise ValueError(f"visible_type must be one of {VISIBLE_TYPES}, not {visible_type!r}")
        self.visible_type = visible_type
        # Small random weights and zero biases (Hinton's practical guide, 2010).
        self.weight = nn.Parameter(torch.randn(hidden, visible) * 0.01)
        self.hidden_bias = nn.Parameter(torch.zeros(hidden))
        self.visible_bias = nn.Parameter(torch.zeros(visible))

    # --- the two conditionals ---------------------------------------------------------------

    def hidden_probabilities(self, v: torch.Tensor) -> torch.Tensor:
        """p(h = 1 | v), [N, hidden]: the sigmoid layer's output."""
        return torch.sigmoid(functional.linear(v, self.weight, self.hidden_bias))

    def visible_mean(self, h: torch.Tensor) -> torch.Tensor:
        """E[v | h], [N, visible]: probabilities (bernoulli) or the Gaussian's mean."""
        activation = functional.linear(h, self.weight.t(), self.visible_bias)
        return torch.sigmoid(activation) if self.visible_type == "bernoulli" else activation

    def sample_hidden(
        self, v: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        probabilities = self.hidden_probabilities(v)
        return probabilities, torch.bernoulli(probabilities, generator=generator)

    def sample_visible(
        self, h: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        mean = self.visible_mean(h)
        if self.visible_type == "bernoulli":
            return torch.bernoulli(mean, generator=generator)
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return mean + noise

    # --- learning ---------------------------------------------------------------------------

    @torch.no_grad()
    def contrastive_divergence(
        self,
        v0: torch.Tensor,
        k: int = 1,
        chain: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[tuple[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
        """The CD-k estimate of the log-likelihood's gradient on the batch `v0`, as
        (dW, dc, db) to *ascend*, and the hidden state the negative chain ended in.

        `chain` None: the chain starts at the batch's sampled hidden units (CD-k). Otherwise
        it is the hidden state a previous call returned, and the chain goes on from there
        (persistent CD); its rows need not match the batch's."""
        positive_h, sampled_h = self.sample_hidden(v0, generator)
        h = sampled_h if chain is None else chain
        for _ in range(k):
            v = self.sample_visible(h, generator)
            negative_h, h = self.sample_hidden(v, generator)
        # Hidden probabilities, not samples, in the statistics: the same mean, less noise.
        d_weight = positive_h.t() @ v0 / v0.shape[0] - negative_h.t() @ v / v.shape[0]
        d_hidden = positive_h.mean(dim=0) - negative_h.mean(dim=0)
        d_visible = v0.mean(dim=0) - v.mean(dim=0)
        return (d_weight, d_hidden, d_visible), h

    @torch.no_grad()
    def reconstruction_error(self, v: torch.Tensor) -> torch.Tensor:
        """Mean squared error of one deterministic up-down pass, v -> p(h|v) -> E[v|h]: not
        the likelihood CD optimises, but the usual cheap sign that the RBM is learning."""
        return (v - self.visible_mean(self.hidden_probabilities(v))).pow(2).mean()
