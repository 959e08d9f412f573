"""Training health: per-layer gradient norms, dead ReLU units, and the warnings they raise.

Gradient norms are measured on a spread-out sample of about SAMPLED_STEPS steps per epoch and
accumulated on the device (read with the epoch's metrics, no extra sync): a sample sees the
whole epoch, where the last step alone is one noisy batch, and costs a few norm reductions per
epoch, where every step would cost a few percent of a small model's step time. Short epochs
sample at most one step in MIN_SAMPLE_STRIDE: with a few steps an epoch, sampling every one
cost a small model ~8% of its training time, and a thousand such epochs still give thousands
of samples. A layer's
value is the root mean square, over the sampled steps, of the L2 norm of its gradients; the
peak is the largest total norm of a sampled step (an explosion starts as spikes that a mean
smooths away). Both are taken before clipping: clipping hides an explosion, the warning
should not.

Dead ReLU units are counted on the validation set during evaluation: a unit (a feature of a
[N, F] output, a channel of a [N, C, ...] one) is dead when its ReLU outputs 0 for every row.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from engine.training.devices import to_device

SAMPLED_STEPS = 16
MIN_SAMPLE_STRIDE = 4
# The first layer's gradient norm below this fraction of the last layer's, 2 epochs running.
# A 10-layer sigmoid MLP (width 32) starts near 1e-7 (Adam lifts it slowly, ~1e-6 after six
# epochs), the same net with ReLU and He initialisation sits between 0.1 and 1: the gap is
# wide, so the threshold is not delicate. No absolute floor: a model that has converged
# has small gradients everywhere, which is not a vanishing gradient.
VANISHING_RATIO = 1e-5
VANISHING_EPOCHS = 2
# The peak total gradient norm above this, or growing 10x per epoch two epochs running.
# Healthy models on standardised data sit between 0.01 and 10; SGD at learning rate 10 on a
# small MLP passes 1e3 within a few steps, before the loss overflows.
EXPLODING_NORM = 1e3
EXPLODING_GROWTH = 10.0
DEAD_RELU_FRACTION = 0.5
# Validation loss rising this many epochs in a row, by 1% in all (not float jitter on a
# plateau), while training loss falls.
OVERFITTING_EPOCHS = 3
OVERFITTING_RISE = 0.01


class GradientProbe:
    """The gradient norm of each parameterised module, by its dotted name ("0", "3", ...)."""

    def __init__(self, model: nn.Module) -> None:
        self.names: list[str] = []
        self.params: list[nn.Parameter] = []
        layer_of: list[int] = []
        for name, module in model.named_modules():
            own = [p for p in module.parameters(recurse=False) if p.requires_grad]
            if own:
                layer_of += [len(self.names)] * len(own)
                self.names.append(name or "model")
                self.params += own
        self.layer_of = layer_of
        self.every = 1
        self.samples = 0
        self.squares = torch.zeros(0)
        self.peak = torch.zeros(())
        self._layer_index: torch.Tensor | None = None

    def start_epoch(self, steps: int, device: torch.device) -> None:
        self.every = max(MIN_SAMPLE_STRIDE, steps // SAMPLED_STEPS)
        self.samples = 0
        self.squares = torch.zeros(len(self.params), device=device)
        self.peak = torch.zeros((), device=device)
        if self._layer_index is None or self._layer_index.device != self.squares.device:
            # Copied once per run, not once per epoch.
            self._layer_index = to_device(torch.tensor(self.layer_of, dtype=torch.long), device)

    def due(self, step: int) -> bool:
        return step % self.every == 0

    def sample(self) -> None:
        grads = [p.grad if p.grad is not None else p.new_zeros(()) for p in self.params]
        if grads:
            squares = torch.stack(torch._foreach_norm(grads)).float().square()
            self.squares += squares
            torch.maximum(self.peak, squares.sum(), out=self.peak)
        self.samples += 1

    def summary(self) -> torch.Tensor:
        """[per-layer mean squared norm..., peak squared total norm], left on the device."""
        assert self._layer_index is not None, "start_epoch comes first"
        per_layer = torch.zeros(len(self.names), device=self.squares.device)
        per_layer.index_add_(0, self._layer_index, self.squares).div_(max(self.samples, 1))
        return torch.cat([per_layer, self.peak.view(1)])

    def read(self, values: list[float]) -> tuple[dict[str, float], float]:
        """(grad norm per layer, peak total norm) from summary()'s values."""
        norms = [math.sqrt(v) for v in values]
        return dict(zip(self.names, norms[:-1], strict=True)), norms[-1]


class DeadReluProbe:
    """Counts, across every nn.ReLU, the units that never fire on the rows it is shown."""

    def __init__(self, model: nn.Module) -> None:
        self.relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
        self.fired: list[torch.Tensor] = []
        self._call = 0

    @contextmanager
    def watching(self) -> Iterator[None]:
        self.fired = []
        handles = [m.register_forward_hook(self._hook) for m in self.relus]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    def next_batch(self) -> None:
        # A ReLU module can be called more than once per forward; calls are matched by order.
        self._call = 0

    def _hook(self, module: nn.Module, inputs: object, output: torch.Tensor) -> None:
        if output.ndim < 2:
            return
        positive = output > 0
        if positive.ndim == 2:
            fired = positive.any(dim=0)
        else:
            fired = positive.transpose(0, 1).flatten(1).any(dim=1)
        if self._call < len(self.fired):
            self.fired[self._call] |= fired
        else:
            self.fired.append(fired)
        self._call += 1

    def dead_and_total(self) -> tuple[torch.Tensor, int] | None:
        if not self.fired:
            return None
        dead = sum((~fired).sum() for fired in self.fired)
        return dead, sum(fired.numel() for fired in self.fired)


def warning(code: str, epoch: int, message: str) -> dict[str, object]:
    return {"code": code, "epoch": epoch, "message": message}


class HealthMonitor:
    """Turns each epoch's health into warnings, each reported once, with the epoch it began."""

    def __init__(self) -> None:
        self.raised: list[dict[str, object]] = []
        self.vanishing_since = 0
        self.growth_since = 0
        self.previous_peak = 0.0
        self.losses: list[list[float]] = []  # the last epochs' [train_loss, val_loss]

    def observe(
        self,
        epoch: int,
        grad_norm: dict[str, float],
        peak_norm: float,
        dead_relu_fraction: float | None,
        train_loss: float,
        val_loss: float | None,
    ) -> list[dict[str, object]]:
        """New warnings of this epoch; `val_loss` None (no validation rows) skips the
        overfitting check."""
        found: list[dict[str, object]] = []
        norms = list(grad_norm.values())

        if len(norms) >= 2 and norms[0] < VANISHING_RATIO * norms[-1]:
            self.vanishing_since = self.vanishing_since or epoch
            if epoch - self.vanishing_since + 1 >= VANISHING_EPOCHS:
                found.append(
                    warning(
                        "vanishing_gradient",
                        self.vanishing_since,
                        f"the first layer's gradient norm ({norms[0]:.1e}) is below "
                        f"{VANISHING_RATIO:g} of the last layer's ({norms[-1]:.1e}): the early "
                        "layers barely learn; use relu-like activations, he initialisation, "
                        "batch norm or residual blocks",
                    )
                )
        else:
            self.vanishing_since = 0

        growing = self.previous_peak > 0 and peak_norm >= EXPLODING_GROWTH * self.previous_peak
        self.growth_since = (self.growth_since or epoch) if growing else 0
        self.previous_peak = peak_norm
        if peak_norm > EXPLODING_NORM or (self.growth_since and epoch > self.growth_since):
            found.append(
                warning(
                    "exploding_gradient",
                    self.growth_since or epoch,
                    f"the gradient norm reached {peak_norm:.1e}: lower training.learning_rate or "
                    "set training.gradient_clip_norm",
                )
            )

        if dead_relu_fraction is not None and dead_relu_fraction > DEAD_RELU_FRACTION:
            found.append(
                warning(
                    "dead_relu",
                    epoch,
                    f"{dead_relu_fraction:.0%} of ReLU units output 0 for every validation row: "
                    "lower training.learning_rate or use leaky_relu",
                )
            )

        if val_loss is not None:
            found += self._overfitting(epoch, train_loss, val_loss)

        seen = {w["code"] for w in self.raised}
        new = [w for w in found if w["code"] not in seen]
        self.raised += new
        return new

    def _overfitting(
        self, epoch: int, train_loss: float, val_loss: float
    ) -> list[dict[str, object]]:
        found: list[dict[str, object]] = []
        self.losses = [*self.losses, [train_loss, val_loss]][-(OVERFITTING_EPOCHS + 1) :]
        train, val = [t for t, _ in self.losses], [v for _, v in self.losses]
        if (
            len(self.losses) > OVERFITTING_EPOCHS
            and all(a < b for a, b in zip(val, val[1:], strict=False))
            and val[-1] > val[0] * (1 + OVERFITTING_RISE)
            and train[-1] < train[0]
        ):
            found.append(
                warning(
                    "overfitting",
                    epoch - OVERFITTING_EPOCHS + 1,
                    f"validation loss rose {OVERFITTING_EPOCHS} epochs in a row while training "
                    "loss fell: add dropout or weight decay, keep early stopping, or add data",
                )
            )
        return found

    def state_dict(self) -> dict[str, object]:
        return {
            "raised": self.raised,
            "vanishing_since": self.vanishing_since,
            "growth_since": self.growth_since,
            "previous_peak": self.previous_peak,
            "losses": self.losses,
        }

    def load_state_dict(self, state: dict[str, object]) -> None:
        self.raised = list(state["raised"])
        self.vanishing_since = int(state["vanishing_since"])
        self.growth_since = int(state["growth_since"])
        self.previous_peak = float(state["previous_peak"])
        self.losses = [list(pair) for pair in state["losses"]]


# A GAN (engine/training/gan.py). Mode collapse: the generator's outputs for a fixed noise
# batch spread less than this fraction of the real rows' spread (mean per-feature standard
# deviation), this many epochs running. A healthy generator sits near 1 (0.5 to 1.2 on the
# digits and breast-cancer benches); one that makes a single example, near 0.
MODE_COLLAPSE_RATIO = 0.1
MODE_COLLAPSE_EPOCHS = 2
# Discriminator overpowering: its loss below this (it tells real from fake almost always)
# while the generator's loss climbs, this many epochs running. Balanced training keeps the
# discriminator's loss near 2 log 2 = 1.39 and rarely below 0.3.
OVERPOWERING_D_LOSS = 0.05
OVERPOWERING_EPOCHS = 3


class GanHealthMonitor:
    """Turns a GAN's epochs into warnings (`mode_collapse`, `discriminator_overpowering`),
    each reported once, with the epoch it began."""

    def __init__(self) -> None:
        self.raised: list[dict[str, object]] = []
        self.collapse_since = 0
        self.losses: list[list[float]] = []  # the last epochs' [d_loss, g_loss]

    def observe(
        self, epoch: int, d_loss: float, g_loss: float, sample_std_ratio: float
    ) -> list[dict[str, object]]:
        found: list[dict[str, object]] = []
        if sample_std_ratio < MODE_COLLAPSE_RATIO:
            self.collapse_since = self.collapse_since or epoch
            if epoch - self.collapse_since + 1 >= MODE_COLLAPSE_EPOCHS:
                found.append(
                    warning(
                        "mode_collapse",
                        self.collapse_since,
                        f"generated samples spread {sample_std_ratio:.2f} of the real rows' "
                        "spread: the generator makes nearly one example whatever the noise; "
                        "set model.spectral_norm, lower training.learning_rate or widen "
                        "model.latent_dim",
                    )
                )
        else:
            self.collapse_since = 0

        self.losses = [*self.losses, [d_loss, g_loss]][-OVERPOWERING_EPOCHS:]
        d, g = [pair[0] for pair in self.losses], [pair[1] for pair in self.losses]
        if (
            len(self.losses) == OVERPOWERING_EPOCHS
            and all(value < OVERPOWERING_D_LOSS for value in d)
            and g[-1] > g[0]
        ):
            found.append(
                warning(
                    "discriminator_overpowering",
                    epoch - OVERPOWERING_EPOCHS + 1,
                    f"the discriminator's loss stayed below {OVERPOWERING_D_LOSS} for "
                    f"{OVERPOWERING_EPOCHS} epochs while the generator's climbed to {g[-1]:.2f}: "
                    "the generator gets no useful gradient; set model.spectral_norm or lower "
                    "model.discriminator_learning_rate",
                )
            )

        seen = {w["code"] for w in self.raised}
        new = [w for w in found if w["code"] not in seen]
        self.raised += new
        return new

    def state_dict(self) -> dict[str, object]:
        return {"raised": self.raised, "collapse_since": self.collapse_since, "losses": self.losses}

    def load_state_dict(self, state: dict[str, object]) -> None:
        self.raised = list(state["raised"])
        self.collapse_since = int(state["collapse_since"])
        self.losses = [list(pair) for pair in state["losses"]]
