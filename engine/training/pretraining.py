"""Greedy layer-wise pretraining of an MLP as a deep belief network (Hinton, Osindero and Teh,
2006), before the supervised fine-tuning the trainer does. Read top to bottom:

1. the MLP's hidden `nn.Linear` layers, in order (the output layer is fine-tuning's alone);
2. for each, an RBM of its shape (engine/models/rbm.py) trained for `pretrain.epochs` epochs of
   CD-k (or persistent CD) on mini-batches of what the layer will read: the preprocessed
   training inputs for the first, the sigmoid output of the pretrained layer below for the
   others;
3. the RBM's weight and hidden bias are copied into the Linear layer, and the data passed up
   through it as probabilities, `sigmoid(W x + c)`: what the MLP's sigmoid layer computes.

The first RBM's visible units are `gaussian` (unit variance: standardised inputs) or
`bernoulli` (inputs in [0, 1]); the spec's `pretrain.visible`, or by default bernoulli when
every training input lies in [0, 1], else gaussian. The layers above read probabilities, so
their RBMs are bernoulli. Dropout is left out while pretraining (it is fine-tuning's); the
RBMs' visible biases have no place in the MLP and are dropped.

Each RBM epoch is reported (layer, epoch, the reconstruction error of the layer's input at the
epoch's end); the cancel check runs before every update. Sampling draws from a generator
seeded from the spec's seed, so a rerun pretrains alike. Pretraining keeps no checkpoint: a
run resumed from a fine-tuning checkpoint has its pretrained (and fine-tuned) weights there and
skips it; a run that stopped before its first checkpoint pretrains again from the start.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from engine.errors import SpecMismatch, TrainingCancelled, TrainingDiverged
from engine.models.rbm import RBM
from engine.spec import Spec
from engine.spec.model import MLPConfig, PretrainConfig

# RBM updates: SGD with this momentum (Hinton's guide starts at 0.5).
MOMENTUM = 0.5
# Default learning rates by the RBM's visible units; gaussian ones need a smaller one.
DEFAULT_LEARNING_RATES = {"bernoulli": 0.1, "gaussian": 0.01}


@dataclass
class PretrainReport:
    layer: int  # 1-based, the hidden layer this RBM initialises
    layers: int
    epoch: int  # 1-based, within the layer
    epochs: int  # per layer
    reconstruction_error: float
    learning_rate: float
    samples_per_second: float
    seconds: float

    @property
    def step(self) -> int:
        """1-based over all of pretraining: (layer - 1) * epochs + epoch."""
        return (self.layer - 1) * self.epochs + self.epoch


PretrainCallback = Callable[[PretrainReport], None]


@dataclass
class Pretrained:
    rbms: list[RBM]  # one per hidden layer, in order; its weight and hidden bias are the layer's
    reports: list[PretrainReport]  # every RBM epoch, in order


def pretrain_config(spec: Spec) -> PretrainConfig | None:
    model = spec.model
    return model.pretrain if isinstance(model, MLPConfig) else None


def pretraining_epochs(spec: Spec) -> int:
    """RBM epochs the spec asks for in all: its hidden layers times `pretrain.epochs`."""
    config = pretrain_config(spec)
    if config is None:
        return 0
    assert isinstance(spec.model, MLPConfig)
    return len(spec.model.hidden) * config.epochs


def check_pretraining(spec: Spec, embedded: Sequence[Any]) -> None:
    """What only the data can refuse: category embeddings in front of a pretrained MLP."""
    if pretrain_config(spec) is not None and embedded:
        raise SpecMismatch(
            "model.pretrain",
            "DBN pretraining reads the MLP's input as fixed values, but columns with encoding "
            "'embedding' feed it vectors learned later: use encoding 'onehot' or 'ordinal' "
            "with pretrain",
        )


def describe_pretraining(spec: Spec, input_shape: Sequence[int]) -> dict[str, Any] | None:
    """The pretraining a spec asks for on this input: its settings and one row per RBM
    (the layer it initialises, its shape and parameters), or None without pretraining."""
    config = pretrain_config(spec)
    if config is None:
        return None
    assert isinstance(spec.model, MLPConfig)
    widths = [math.prod(input_shape), *spec.model.hidden]
    # Layer names as in the layer table: the MLP's positions, a Flatten first for rank > 1.
    position = 1 if len(input_shape) > 1 else 0
    per_block = 2 + (spec.model.dropout > 0)
    rbms = []
    for i, (visible, hidden) in enumerate(zip(widths, widths[1:], strict=False)):
        first = i == 0
        rbms.append(
            {
                "layer": str(position + i * per_block),
                "visible_units": visible,
                "hidden_units": hidden,
                "visible_type": (config.visible if first else "bernoulli"),
                "parameters": visible * hidden + visible + hidden,
            }
        )
    return {
        "method": config.method,
        "epochs": config.epochs,
        "total_epochs": config.epochs * len(rbms),
        "cd_k": config.cd_k,
        "persistent": config.persistent,
        "learning_rate": config.learning_rate,
        "rbms": rbms,
    }


def choose_visible_type(config: PretrainConfig, x: torch.Tensor) -> str:
    if config.visible is not None:
        return config.visible
    in_unit_interval = bool(((x >= 0) & (x <= 1)).all())
    return "bernoulli" if in_unit_interval else "gaussian"


def hidden_layers(model: nn.Module) -> list[nn.Linear]:
    """The MLP's Linear layers but the last (the output layer), in order."""
    linears = [module for module in model.modules() if isinstance(module, nn.Linear)]
    return linears[:-1]


def pretrain_dbn(
    model: nn.Module,
    config: PretrainConfig,
    x: torch.Tensor,
    batch_size: int,
    seed: int,
    on_epoch: PretrainCallback | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> Pretrained:
    """Pretrain `model`'s hidden layers in place on the training inputs `x` (moved to the
    model's device): the RBMs and every epoch's report."""
    layers = hidden_layers(model)
    device = layers[0].weight.device
    data = x.to(device=device, dtype=torch.float32).flatten(start_dim=1)
    sampling = torch.Generator(device=device).manual_seed(seed)
    shuffle = torch.Generator().manual_seed(seed)
    visible_type = choose_visible_type(config, data)
    pretrained = Pretrained(rbms=[], reports=[])
    for index, layer in enumerate(layers):
        rbm = RBM(layer.in_features, layer.out_features, visible_type).to(device)
        pretrained.rbms.append(rbm)
        learning_rate = config.learning_rate or DEFAULT_LEARNING_RATES[visible_type]
        # One optimizer per RBM: its momentum carries across the epochs.
        optimizer = torch.optim.SGD(rbm.parameters(), lr=learning_rate, momentum=MOMENTUM)
        chain: torch.Tensor | None = None  # persistent CD's hidden state, kept across epochs
        for epoch in range(1, config.epochs + 1):
            started = time.perf_counter()
            chain = _train_epoch(
                rbm, optimizer, data, config, batch_size, chain, sampling, shuffle, should_cancel
            )
            error = float(rbm.reconstruction_error(data))
            if not math.isfinite(error):
                raise TrainingDiverged(
                    f"the RBM of hidden layer {index + 1} diverged in epoch {epoch} "
                    f"(reconstruction error {error}): lower model.pretrain.learning_rate"
                )
            seconds = time.perf_counter() - started
            report = PretrainReport(
                layer=index + 1,
                layers=len(layers),
                epoch=epoch,
                epochs=config.epochs,
                reconstruction_error=error,
                learning_rate=learning_rate,
                samples_per_second=data.shape[0] / seconds if seconds > 0 else 0.0,
                seconds=seconds,
            )
            pretrained.reports.append(report)
            if on_epoch is not None:
                on_epoch(report)
        with torch.no_grad():
            layer.weight.copy_(rbm.weight)
            if layer.bias is not None:
                layer.bias.copy_(rbm.hidden_bias)
            data = rbm.hidden_probabilities(data)
        visible_type = "bernoulli"
    return pretrained


def _train_epoch(
    rbm: RBM,
    optimizer: torch.optim.Optimizer,
    data: torch.Tensor,
    config: PretrainConfig,
    batch_size: int,
    chain: torch.Tensor | None,
    sampling: torch.Generator,
    shuffle: torch.Generator,
    should_cancel: Callable[[], bool] | None,
) -> torch.Tensor | None:
    """One pass over `data` in shuffled mini-batches, one CD update each; the persistent
    chain's state after it (None for plain CD)."""
    n = data.shape[0]
    batch = min(batch_size, n)
    order = torch.randperm(n, generator=shuffle).to(data.device)
    for start in range(0, n, batch):
        if should_cancel is not None and should_cancel():
            raise TrainingCancelled("the job was cancelled")
        v0 = data[order[start : start + batch]]
        gradient, end = rbm.contrastive_divergence(
            v0, config.cd_k, chain=chain if config.persistent else None, generator=sampling
        )
        if config.persistent:
            chain = end
        # The optimizer descends, so it gets the negative log-likelihood's gradient.
        for parameter, ascent in zip(
            (rbm.weight, rbm.hidden_bias, rbm.visible_bias), gradient, strict=True
        ):
            parameter.grad = -ascent
        optimizer.step()
    return chain
