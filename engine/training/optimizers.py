"""The optimizer a spec names, over a model's parameters."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from engine.spec.training import TrainingConfig


def build_optimizer(
    config: TrainingConfig, params: Iterator[nn.Parameter]
) -> torch.optim.Optimizer:
    lr, wd = config.learning_rate, config.weight_decay
    match config.optimizer:
        case "sgd":
            return torch.optim.SGD(
                params, lr=lr, momentum=config.momentum, nesterov=config.nesterov, weight_decay=wd
            )
        case "adam":
            return torch.optim.Adam(params, lr=lr, weight_decay=wd)
        case "adamw":
            return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
        case "rmsprop":
            return torch.optim.RMSprop(params, lr=lr, momentum=config.momentum, weight_decay=wd)
        case "adagrad":
            return torch.optim.Adagrad(params, lr=lr, weight_decay=wd)
    raise ValueError(f"unknown optimizer {config.optimizer!r}")
