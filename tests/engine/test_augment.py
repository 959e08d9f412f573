"""Augmentation: vectorised, seeded changes to training batches only, refused where it does not
fit the data."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import torch
from torch import nn

from engine.data.arrays.dataset import ArrayData
from engine.data.augment import BatchAugment, build_augment
from engine.errors import SpecMismatch
from engine.spec import Spec
from engine.spec.data import DataConfig
from engine.training.preparation import dry_run
from engine.training.recipe import train
from engine.training.trainer import Trainer
from tests.sample_data import linear_regression


def _augment(kind: str = "image", reconstruct: bool = False, **options) -> BatchAugment:
    return BatchAugment(DataConfig(augment=options), kind, seed=0, reconstruct=reconstruct)


def _image() -> torch.Tensor:
    """One asymmetric 1x4x5 image, repeated 64 times."""
    return torch.arange(20, dtype=torch.float32).reshape(1, 1, 4, 5).repeat(64, 1, 1, 1)


def test_horizontal_flip_flips_about_half_the_images_left_right():
    x = _image()

    out, _ = _augment(horizontal_flip=True)(x, torch.zeros(64))

    flipped = [torch.equal(o, x[0].flip(2)) for o in out]
    kept = [torch.equal(o, x[0]) for o in out]
    assert all(f or k for f, k in zip(flipped, kept, strict=True))
    assert 16 < sum(flipped) < 48


def test_vertical_flip_flips_top_bottom():
    x = _image()

    out, _ = _augment(vertical_flip=True)(x, torch.zeros(64))

    assert all(torch.equal(o, x[0]) or torch.equal(o, x[0].flip(1)) for o in out)
    assert any(torch.equal(o, x[0].flip(1)) for o in out)


def test_crop_after_padding_shifts_each_image_within_the_padding():
    x = _image() + 1  # no zero pixel, so the padding shows
    padded = torch.nn.functional.pad(x[0], (2, 2, 2, 2))

    out, _ = _augment(crop_padding=2)(x, torch.zeros(64))

    assert out.shape == x.shape
    windows = {
        (top, left): padded[:, top : top + 4, left : left + 5]
        for top in range(5)
        for left in range(5)
    }
    assert all(any(torch.equal(o, w) for w in windows.values()) for o in out)
    assert len({tuple(o.flatten().tolist()) for o in out}) > 5


def test_rotation_keeps_the_shape_and_a_constant_image_inside():
    x = torch.ones(16, 3, 9, 9)

    out, _ = _augment(rotation_degrees=10.0)(x, torch.zeros(16))

    assert out.shape == x.shape
    assert torch.allclose(out[:, :, 3:6, 3:6], torch.ones(16, 3, 3, 3), atol=1e-5)
    assert not torch.equal(out, x)  # the corners rotate in from outside


def test_sequence_scaling_multiplies_each_channel_and_time_shift_rolls():
    x = torch.randn(32, 10, 3)

    scaled, _ = _augment("sequence", scaling_std=0.2)(x, torch.zeros(32))
    shifted, _ = _augment("sequence", time_shift=3)(x, torch.zeros(32))

    ratio = scaled / x
    assert torch.allclose(ratio, ratio[:, :1, :].expand_as(ratio), atol=1e-4)
    for original, rolled in zip(x, shifted, strict=True):
        assert any(torch.equal(rolled, original.roll(s, dims=0)) for s in range(-3, 4))
    assert not torch.equal(shifted, x)


def test_noise_and_jitter_add_gaussian_noise_of_their_spread():
    x = torch.zeros(256, 50, 2)

    out, _ = _augment("sequence", jitter_std=0.5, noise_std=0.5)(x, torch.zeros(256))

    assert out.std().item() == pytest.approx(1.0, rel=0.05)


def test_the_same_seed_and_epoch_draw_the_same_batch_and_another_epoch_another():
    x = torch.randn(8, 1, 6, 6)
    augment = _augment(horizontal_flip=True, noise_std=0.1, rotation_degrees=5.0)

    augment.start_epoch(1, x.device)
    first, _ = augment(x, torch.zeros(8))
    augment.start_epoch(1, x.device)
    again, _ = augment(x, torch.zeros(8))
    augment.start_epoch(2, x.device)
    other, _ = augment(x, torch.zeros(8))

    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_reconstruction_targets_follow_the_geometry_but_not_the_noise():
    x = _image()

    noisy, target = _augment(reconstruct=True, horizontal_flip=True, noise_std=0.5)(x, x)

    assert all(torch.equal(t, x[0]) or torch.equal(t, x[0].flip(2)) for t in target)
    assert (noisy - target).abs().max() > 0


class _Recorder(nn.Module):
    """A linear classifier that keeps every batch it sees, in training and in eval mode."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
        self.seen: dict[bool, list[torch.Tensor]] = {True: [], False: []}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen[self.training].append(x.detach().clone())
        return self.head(x)


def test_the_trainer_augments_training_batches_and_never_validation():
    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, 1, 4, 4, generator=generator), torch.randint(0, 2, (40,))
    spec = Spec.model_validate(
        {
            "task": "classification",
            "target": "y",
            "data": {"augment": {"horizontal_flip": True, "noise_std": 0.1}},
            "training": {"epochs": 2, "batch_size": "full", "device": "cpu"},
        }
    )
    model = _Recorder()
    augment = build_augment(spec.data, "image", spec.task, spec.seed)

    Trainer(spec, model, torch.device("cpu"), augment=augment).fit(x[:30], y[:30], x[30:], y[30:])

    training = model.seen[True]
    assert len(training) == 2 and all(b.shape == (30, 1, 4, 4) for b in training)
    assert not any(torch.equal(b.sort(dim=0).values, x[:30].sort(dim=0).values) for b in training)
    # Eval mode saw one training row as given (the output-shape probe: there may be no
    # validation rows), then the validation rows exactly as given, each epoch.
    probe, *validation = model.seen[False]
    assert torch.equal(probe, x[:1])
    assert len(validation) == 2 and all(torch.equal(b, x[30:]) for b in validation)


def _images(n: int = 60) -> ArrayData:
    rng = np.random.default_rng(0)
    y = np.arange(n) % 2
    x = rng.integers(0, 100, size=(n, 1, 8, 8)).astype(np.uint8)
    x[y == 1, :, :4] += 120  # class 1 is bright on top
    return ArrayData(x, y, ["dark", "bright"], "image")


def _image_spec(**augment) -> Spec:
    return Spec.model_validate(
        {
            "task": "classification",
            "target": "y",
            "data": {"augment": augment},
            "training": {"epochs": 2, "device": "cpu"},
        }
    )


def test_an_augmented_image_job_trains_and_scores_the_untouched_test_rows():
    plain = train(_image_spec(), _images())
    augmented = train(_image_spec(horizontal_flip=True, crop_padding=1), _images())

    assert augmented.fit.history != plain.fit.history
    assert augmented.evaluation["rows"] == plain.evaluation["rows"] > 0


@pytest.mark.parametrize(
    ("augment", "data", "field"),
    [
        ({"horizontal_flip": True}, "sequence", "data.augment.horizontal_flip"),
        ({"jitter_std": 0.1}, "image", "data.augment.jitter_std"),
        ({"noise_std": 0.1}, "vector", "data.augment.noise_std"),
        ({"noise_std": 0.1}, "table", "data.augment.noise_std"),
        ({"crop_padding": 2}, "table", "data.augment.crop_padding"),
    ],
)
def test_an_option_that_does_not_fit_the_data_is_refused_naming_it(augment, data, field):
    rng = np.random.default_rng(0)
    datasets = {
        "sequence": ArrayData(rng.normal(size=(20, 6, 2)).astype(np.float32), np.arange(20) % 2,
                              [0, 1], "sequence"),
        "image": _images(20),
        "vector": ArrayData(rng.normal(size=(20, 3)).astype(np.float32), np.arange(20) % 2,
                            [0, 1], "vector"),
    }  # fmt: skip
    if data == "table":
        spec = Spec.model_validate(
            {"task": "regression", "target": "y", "data": {"augment": augment}}
        )
        dataset = pa.table(linear_regression(n=30))
    else:
        spec, dataset = _image_spec(**augment), datasets[data]

    with pytest.raises(SpecMismatch) as info:
        dry_run(spec, dataset)

    assert info.value.field == field


def test_time_shift_is_refused_for_forecasting_windows():
    spec = Spec.model_validate(
        {
            "task": "forecasting",
            "target": "y",
            "data": {"window": 4, "augment": {"time_shift": 2}},
        }
    )

    with pytest.raises(SpecMismatch) as info:
        dry_run(spec, pa.table(linear_regression(n=40)))

    assert info.value.field == "data.augment.time_shift"
