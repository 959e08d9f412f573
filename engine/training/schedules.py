"""Learning-rate schedules as plain functions of (epoch, step), plus linear warm-up.

Written out rather than taken from torch.optim.lr_scheduler so that warm-up composes with
every schedule in one line, the rate of any step is known without replaying the steps before
it, and the state a checkpoint needs is three numbers (reduce_on_plateau's), not a pickle.

Clocks: epochs count from 1. Warm-up multiplies the rate by (step + 1) / warm-up steps over
the first `warmup_epochs`, so the rate of warm-up epoch e ends at e / warmup_epochs of the
schedule's start. The schedule's own clock starts after warm-up.
"""

from __future__ import annotations

import math

from engine.spec.training import (
    CosineSchedule,
    OneCycleSchedule,
    ReduceOnPlateauSchedule,
    StepSchedule,
    TrainingConfig,
)

# torch.optim.lr_scheduler.OneCycleLR's defaults: start at max_lr / 25, end at max_lr / 25e4.
ONE_CYCLE_DIV = 25.0
ONE_CYCLE_FINAL_DIV = 1e4


class LearningRateSchedule:
    def __init__(self, config: TrainingConfig, steps_per_epoch: int) -> None:
        self.base = config.learning_rate
        self.schedule = config.schedule
        self.warmup_steps = config.warmup_epochs * steps_per_epoch
        self.warmup_epochs = config.warmup_epochs
        self.steps_per_epoch = steps_per_epoch
        self.main_epochs = config.epochs - config.warmup_epochs
        # reduce_on_plateau's state: the only schedule that depends on what training saw.
        self.best_loss = math.inf
        self.bad_epochs = 0
        self.scale = 1.0

    def learning_rate(self, epoch: int, step: int) -> float:
        """The rate of step `step` (from 0) of epoch `epoch` (from 1)."""
        main_epoch = max(epoch - 1 - self.warmup_epochs, 0)
        main_step = max((epoch - 1) * self.steps_per_epoch + step - self.warmup_steps, 0)
        lr = self._main(main_epoch, main_step)
        global_step = (epoch - 1) * self.steps_per_epoch + step
        if global_step < self.warmup_steps:
            lr *= (global_step + 1) / self.warmup_steps
        return lr

    def _main(self, epoch: int, step: int) -> float:
        match self.schedule:
            case None:
                return self.base
            case StepSchedule(step_size=size, gamma=gamma):
                return self.base * gamma ** (epoch // size)
            case CosineSchedule(t_max=t_max, eta_min=eta_min):
                span = t_max or self.main_epochs
                cosine = (1 + math.cos(math.pi * min(epoch, span) / span)) / 2
                return eta_min + (self.base - eta_min) * cosine
            case OneCycleSchedule(max_lr=max_lr, pct_start=pct_start):
                return self._one_cycle(max_lr or self.base, pct_start, step)
            case ReduceOnPlateauSchedule(min_lr=min_lr):
                return max(self.base * self.scale, min_lr)
        raise ValueError(f"unknown schedule {self.schedule!r}")

    def _one_cycle(self, peak: float, pct_start: float, step: int) -> float:
        total = self.main_epochs * self.steps_per_epoch
        rise = max(1, round(pct_start * total))
        start, end = peak / ONE_CYCLE_DIV, peak / (ONE_CYCLE_DIV * ONE_CYCLE_FINAL_DIV)
        if step < rise:
            low, high, progress = start, peak, step / rise
        else:
            low, high, progress = end, peak, 1 - (step - rise) / max(1, total - 1 - rise)
        # Cosine annealing between the phase's ends, as OneCycleLR's default.
        return low + (high - low) * (1 - math.cos(math.pi * min(max(progress, 0.0), 1.0))) / 2

    def end_epoch(self, epoch: int, val_loss: float) -> None:
        """reduce_on_plateau looks at the validation loss after each epoch past warm-up."""
        if not isinstance(self.schedule, ReduceOnPlateauSchedule) or epoch <= self.warmup_epochs:
            return
        if val_loss < self.best_loss:
            self.best_loss, self.bad_epochs = val_loss, 0
            return
        self.bad_epochs += 1
        if self.bad_epochs > self.schedule.patience:
            self.scale *= self.schedule.factor
            self.bad_epochs = 0

    def state_dict(self) -> dict[str, float]:
        return {"best_loss": self.best_loss, "bad_epochs": self.bad_epochs, "scale": self.scale}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.best_loss = float(state["best_loss"])
        self.bad_epochs = int(state["bad_epochs"])
        self.scale = float(state["scale"])
