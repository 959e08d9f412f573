"""Training a GAN (task `generation`): two networks, two optimizers, one loop read top to bottom.

1. check the spec: options of the supervised loop that mean nothing here are refused, naming
   the field (a loss, a schedule, early stopping, sampling, augmentation, folds);
2. prepare the data with the service's own pipeline (engine/training/preparation.py) as a
   reconstruction (unconditional) or classification (conditional: the target is the class)
   of every row: no validation or test rows, since nothing is predicted;
3. build the generator and the discriminator (engine/models/gan.py) and set the generator's
   output bounds from the training data;
4. per epoch, per batch: `discriminator_steps` discriminator updates on real rows and fresh
   fakes, then one generator update, both with the non-saturating loss
   (D: softplus(-D(real)) + softplus(D(fake)); G: softplus(-D(fake)));
5. report the epoch (`d_loss`, `g_loss`, `sample_std_ratio`) and its health warnings through
   the trainer's callbacks (`EpochReport`, cancel check, `Checkpoint`), so the job service
   records a GAN as any job, and resumes it from its checkpoint;
6. keep the generator: it is what the model folder holds and what `sample` serves.
"""

from __future__ import annotations

import math
import time
from typing import Any

import pyarrow as pa
import torch
import torch.nn.functional as F
from torch import nn

from engine.data.arrays.dataset import ArrayData
from engine.errors import DataError, SpecMismatch, TrainingCancelled, TrainingDiverged
from engine.generation import gan_config, gan_shapes
from engine.models import ModelSummary, count_parameters
from engine.models.gan import (
    GANShapes,
    Generator,
    build_discriminator,
    build_generator,
    with_condition,
)
from engine.models.summary import summarise
from engine.pipeline import TablePipeline
from engine.spec import Spec
from engine.spec.data import AugmentConfig
from engine.spec.training import TrainingConfig
from engine.training.checkpoint import (
    CheckpointError,
    RunState,
    capture_checkpoint,
    capture_rng_states,
    checkpoint_from_bytes,
    restore_rng_states,
)
from engine.training.devices import resolve_device, to_device
from engine.training.health import GanHealthMonitor
from engine.training.preparation import PreparedData, prepare
from engine.training.trainer import (
    CancelCheck,
    CheckpointCallback,
    EpochCallback,
    EpochReport,
    FitResult,
)

# Adam's betas for both networks, as DCGAN (Radford et al. 2016) trains them.
BETAS = (0.5, 0.999)
# The fixed noise batch whose spread the mode-collapse check watches.
PROBE_SAMPLES = 256

# Options of the supervised loop a GAN does not use: refused when the user sets them.
UNUSED_TRAINING = {
    "loss": "a GAN trains with its own non-saturating loss",
    "class_weights": "a GAN has no classes to weigh",
    "label_smoothing": "a GAN has no classes to smooth",
    "schedule": "a GAN trains at a constant learning rate",
    "warmup_epochs": "a GAN trains at a constant learning rate",
    "l1": "a GAN takes no L1 penalty",
    "momentum": "both networks train with Adam",
    "nesterov": "both networks train with Adam",
}


def check_gan_spec(spec: Spec) -> None:
    """Refuse the options a GAN cannot honour, naming each field."""
    training = spec.training
    defaults = TrainingConfig()
    for name, reason in UNUSED_TRAINING.items():
        if getattr(training, name) != getattr(defaults, name):
            raise SpecMismatch(f"training.{name}", f"{reason}; leave it out")
    if training.early_stopping is not None:  # the spec sets it to null for a GAN
        raise SpecMismatch(
            "training.early_stopping",
            "a GAN has no validation loss to stop on: it trains for training.epochs",
        )
    if training.optimizer != "adam":
        raise SpecMismatch("training.optimizer", "both networks of a GAN train with adam")
    data = spec.data
    if data.sampling.method != "none":
        raise SpecMismatch("data.sampling.method", "a GAN learns the data as it is: no resampling")
    if data.augment != AugmentConfig():
        raise SpecMismatch("data.augment", "a GAN learns the data as it is: no augmentation")
    split = data.split
    for name in ("folds", "group", "order_by"):
        if getattr(split, name) is not None:
            raise SpecMismatch(f"data.split.{name}", "a GAN trains on every row: no splits")


def preparation_spec(spec: Spec) -> Spec:
    """The spec the data is prepared with: every row in training, the target (when
    conditional) encoded as classes."""
    config = gan_config(spec)
    split = spec.data.split.model_copy(update={"validation": 0.0, "test": 0.0})
    return spec.model_copy(
        update={
            "task": "classification" if config.conditional else "reconstruction",
            "model": None,
            "data": spec.data.model_copy(update={"split": split}),
            "training": spec.training.model_copy(update={"early_stopping": None}),
        }
    )


def prepare_gan(
    spec: Spec, data: pa.Table | ArrayData, fit_only: bool = False
) -> tuple[PreparedData, GANShapes]:
    check_gan_spec(spec)
    prepared = prepare(preparation_spec(spec), data, fit_only=fit_only)
    return prepared, gan_shapes(spec, prepared.pipeline)


def describe_gan(
    spec: Spec, data: pa.Table | ArrayData, max_parameters: int | None = None
) -> ModelSummary:
    """The dry run's layer table: the generator's rows, then the discriminator's (each named
    `generator.`/`discriminator.` + its row), shapes and parameters as a zero batch meets
    them. Input shape: the generator's (noise and class); output: one example."""
    prepared, shapes = prepare_gan(spec, data, fit_only=True)
    config = gan_config(spec)
    with torch.device("meta"):
        total = count_parameters(build_generator(config, shapes)) + count_parameters(
            build_discriminator(config, shapes)
        )
    if max_parameters is not None and total > max_parameters:
        raise SpecMismatch(
            "model", f"{total:,} parameters is more than the limit of {max_parameters:,}"
        )
    generator = summarise(build_generator(config, shapes), shapes.generator_input(config))
    discriminator = summarise(build_discriminator(config, shapes), shapes.discriminator_input())
    layers = [
        *(_renamed(row, "generator") for row in generator.layers),
        *(_renamed(row, "discriminator") for row in discriminator.layers),
    ]
    return ModelSummary(
        layers=layers,
        parameters=generator.parameters + discriminator.parameters,
        output_shape=generator.output_shape,
        input_shape=generator.input_shape,
    )


def _renamed(row: Any, network: str) -> Any:
    row.name = f"{network}.{row.name}"
    return row


class _Pair(nn.Module):
    """Both networks under one state dict (`generator.*`, `discriminator.*`): the checkpoint's
    model."""

    def __init__(self, generator: nn.Module, discriminator: nn.Module) -> None:
        super().__init__()
        self.generator = generator
        self.discriminator = discriminator


class _Optimizers:
    """Both optimizers under one state dict: the checkpoint's optimizer."""

    def __init__(self, g: torch.optim.Optimizer, d: torch.optim.Optimizer) -> None:
        self.g, self.d = g, d

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.g.state_dict(), "discriminator": self.d.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.g.load_state_dict(state["generator"])
        self.d.load_state_dict(state["discriminator"])


def train_gan(
    spec: Spec,
    data: pa.Table | ArrayData,
    on_epoch: EpochCallback | None = None,
    should_cancel: CancelCheck | None = None,
    on_checkpoint: CheckpointCallback | None = None,
    resume_from: bytes | None = None,
    checkpoint_interval_seconds: float = 30.0,
) -> tuple[Spec, PreparedData, Generator, FitResult]:
    """The trained generator, with the spec (its model filled in), the prepared data and the
    fit. Same spec, seed and data give the same generator on CPU."""
    config = gan_config(spec)
    prepared, shapes = prepare_gan(spec, data)
    device = resolve_device(spec.training.device)
    x = to_device(prepared.x_train.float(), device)
    n = x.shape[0]
    if n < 2:
        raise DataError("a GAN needs at least 2 training rows")
    onehots = None
    if config.conditional:
        labels = prepared.y_train.long()
        onehots = to_device(F.one_hot(labels, shapes.classes).float(), device)

    torch.manual_seed(spec.seed)
    generator = build_generator(config, shapes)
    _set_output_bounds(generator, prepared, shapes, data)
    if onehots is not None:
        counts = torch.bincount(prepared.y_train.long(), minlength=shapes.classes).float()
        generator.class_prior.copy_(counts / counts.sum())
    discriminator = build_discriminator(config, shapes)
    generator, discriminator = generator.to(device), discriminator.to(device)
    lr = spec.training.learning_rate
    optimizers = _Optimizers(
        torch.optim.Adam(
            generator.parameters(), lr=lr, betas=BETAS, weight_decay=spec.training.weight_decay
        ),
        torch.optim.Adam(
            discriminator.parameters(),
            lr=config.discriminator_learning_rate or lr,
            betas=BETAS,
            weight_decay=spec.training.weight_decay,
        ),
    )
    batch_size = spec.training.batch_size
    batch = n if batch_size == "full" else min(batch_size, n)
    # Whole batches only: batch norm cannot train on a last batch of one row.
    steps = max(1, n // batch)
    shuffle = torch.Generator().manual_seed(spec.seed)
    probe_noise = torch.randn(
        PROBE_SAMPLES, config.latent_dim, generator=torch.Generator().manual_seed(spec.seed + 1)
    ).to(device)
    probe_onehot = None
    if onehots is not None:
        probe_onehot = onehots[torch.arange(PROBE_SAMPLES, device=device) % n]
    real_spread = x.std(dim=0).mean().clamp_min(1e-8)

    pair = _Pair(generator, discriminator)
    monitor = GanHealthMonitor()
    run = RunState()
    if resume_from is not None:
        run = _resume(spec, resume_from, pair, optimizers, monitor, shuffle)
    spec_json = spec.model_dump_json()
    checkpointed_at = time.monotonic()

    for epoch in range(run.epoch + 1, spec.training.epochs + 1):
        started = time.perf_counter()
        generator.train()
        discriminator.train()
        order = to_device(torch.randperm(n, generator=shuffle), device)
        d_sum = torch.zeros((), device=device)
        g_sum = torch.zeros((), device=device)
        for step in range(steps):
            if should_cancel is not None and should_cancel():
                raise TrainingCancelled("the job was cancelled")
            index = order[step * batch : (step + 1) * batch]
            real = x[index]
            condition = onehots[index] if onehots is not None else None
            for _ in range(config.discriminator_steps):
                noise = torch.randn(len(index), config.latent_dim, device=device)
                with torch.no_grad():
                    fake = generator(with_condition(noise, condition))
                d_loss = (
                    F.softplus(-discriminator(with_condition(real, condition))).mean()
                    + F.softplus(discriminator(with_condition(fake, condition))).mean()
                )
                optimizers.d.zero_grad(set_to_none=True)
                d_loss.backward()
                optimizers.d.step()
            noise = torch.randn(len(index), config.latent_dim, device=device)
            fake = generator(with_condition(noise, condition))
            g_loss = F.softplus(-discriminator(with_condition(fake, condition))).mean()
            optimizers.g.zero_grad(set_to_none=True)
            g_loss.backward()
            optimizers.g.step()
            d_sum += d_loss.detach()
            g_sum += g_loss.detach()

        generator.train(False)
        with torch.no_grad():
            probe = generator(with_condition(probe_noise, probe_onehot))
            spread = probe.std(dim=0).mean() / real_spread
        d_mean, g_mean, ratio = torch.stack([d_sum / steps, g_sum / steps, spread]).tolist()
        metrics = {"d_loss": d_mean, "g_loss": g_mean, "sample_std_ratio": ratio}
        broken = [name for name, value in metrics.items() if not math.isfinite(value)]
        if broken:
            raise TrainingDiverged(
                f"{broken[0]} became {metrics[broken[0]]} in epoch {epoch}: lower "
                "training.learning_rate or set model.spectral_norm"
            )
        warnings = monitor.observe(epoch, d_mean, g_mean, ratio)
        run.epoch, run.best_epoch, run.best_metrics = epoch, epoch, metrics
        run.history.append({"epoch": epoch, **metrics, "learning_rate": lr})
        seconds = time.perf_counter() - started
        if on_epoch is not None:
            on_epoch(
                EpochReport(
                    epoch=epoch,
                    epochs=spec.training.epochs,
                    metrics=metrics,
                    samples_per_second=steps * batch / seconds,
                    seconds=seconds,
                    learning_rate=lr,
                    warnings=warnings,
                )
            )
        last = epoch == spec.training.epochs
        due = time.monotonic() - checkpointed_at >= checkpoint_interval_seconds
        if on_checkpoint is not None and (last or due):
            on_checkpoint(
                capture_checkpoint(
                    run,
                    spec_json,
                    pair,
                    optimizers,  # type: ignore[arg-type]
                    {},
                    monitor.state_dict(),
                    capture_rng_states(shuffle, device),
                )
            )
            checkpointed_at = time.monotonic()

    generator = generator.cpu().train(False)
    final = {k: v for k, v in run.history[-1].items() if k not in ("epoch", "learning_rate")}
    fit = FitResult(
        epochs_run=run.epoch,
        best_epoch=run.epoch,
        best_metrics=final,
        stopped_early=False,
        history=run.history,
        warnings=list(monitor.raised),
        metrics=final,
    )
    return spec, prepared, generator, fit


def _set_output_bounds(
    generator: Generator, prepared: PreparedData, shapes: GANShapes, data: Any
) -> None:
    """The generator's output range: each table column's (or image channel's) training
    minimum and maximum in the encoded space; integer columns marked for rounding."""
    x = prepared.x_train.float()
    output = generator[-1]
    if shapes.blocks is None:
        per_channel = x.transpose(0, 1).flatten(1)
        output.low.copy_(per_channel.min(dim=1).values)
        output.high.copy_(per_channel.max(dim=1).values)
        return
    low, high = x.min(dim=0).values, x.max(dim=0).values
    # A constant column would get a zero range; a hair of width keeps the sigmoid's gradient.
    output.low.copy_(low)
    output.high.copy_(torch.maximum(high, low + 1e-6))
    assert isinstance(prepared.pipeline, TablePipeline)
    integral = torch.zeros_like(output.integral)
    at = 0
    for feature in prepared.pipeline.preprocessor.features:
        if feature.kind == "numeric" and isinstance(data, pa.Table):
            kind = data.schema.field(feature.name).type
            integral[at] = float(pa.types.is_integer(kind) or feature.boolean)
        at += feature.width
    output.integral.copy_(integral)


def _resume(
    spec: Spec,
    resume_from: bytes,
    pair: _Pair,
    optimizers: _Optimizers,
    monitor: GanHealthMonitor,
    shuffle: torch.Generator,
) -> RunState:
    checkpoint = checkpoint_from_bytes(resume_from)
    if checkpoint.spec_json != spec.model_dump_json():
        raise CheckpointError("the checkpoint was made for another spec")
    pair.load_state_dict(checkpoint.model)
    optimizers.load_state_dict(checkpoint.optimizer)
    monitor.load_state_dict(checkpoint.health)
    restore_rng_states(checkpoint.rng, shuffle)
    return RunState.from_checkpoint(checkpoint)
