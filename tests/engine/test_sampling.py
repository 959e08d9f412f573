"""Class imbalance: under- and over-sampling of the training rows only, or class weights."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import torch

from engine.data.sampling import resample
from engine.errors import SpecMismatch
from engine.spec import Spec
from engine.training.preparation import dry_run, prepare
from engine.training.recipe import train


def _imbalanced(n: int = 200, seed: int = 0) -> pa.Table:
    """One row in five is class "rare"; x separates the classes."""
    rng = np.random.default_rng(seed)
    label = np.where(np.arange(n) % 5 == 0, "rare", "common")
    x = rng.normal(size=n) + np.where(label == "rare", 2.0, 0.0)
    return pa.table({"x": x, "z": rng.normal(size=n), "label": label})


def _spec(method: str, task: str = "classification", **training) -> Spec:
    return Spec.model_validate(
        {
            "task": task,
            "target": "label" if task == "classification" else "x",
            "data": {"sampling": {"method": method}},
            "training": {"epochs": 3, "device": "cpu", **training},
        }
    )


def test_undersampling_cuts_every_class_to_the_smallest():
    labels = np.array([0] * 50 + [1] * 10 + [2] * 20)

    picked = resample(labels, "undersample", seed=0)

    assert np.bincount(labels[picked]).tolist() == [10, 10, 10]
    assert len(np.unique(picked)) == len(picked)  # no row twice


def test_oversampling_repeats_smaller_classes_up_to_the_largest_keeping_every_row():
    labels = np.array([0] * 50 + [1] * 10 + [2] * 20)

    picked = resample(labels, "oversample", seed=0)

    assert np.bincount(labels[picked]).tolist() == [50, 50, 50]
    assert set(picked.tolist()) == set(range(80))


def test_resampling_is_seeded():
    labels = np.array([0] * 50 + [1] * 10)

    assert np.array_equal(resample(labels, "undersample", 3), resample(labels, "undersample", 3))
    assert not np.array_equal(
        resample(labels, "undersample", 3), resample(labels, "undersample", 4)
    )


@pytest.mark.parametrize(("method", "per_class"), [("undersample", "min"), ("oversample", "max")])
def test_sampling_changes_the_training_rows_only(method, per_class):
    table = _imbalanced()
    plain = prepare(_spec("none"), table)

    prepared = prepare(_spec(method), table)

    before = np.bincount(plain.y_train.numpy())
    assert np.bincount(prepared.y_train.numpy()).tolist() == [getattr(before, per_class)()] * 2
    assert prepared.sampling["before"] == {"common": before[0], "rare": before[1]}
    assert torch.equal(prepared.y_val, plain.y_val)
    assert torch.equal(prepared.y_test, plain.y_test)
    assert prepared.rows["train"] == len(prepared.y_train)


def test_class_weights_weigh_the_loss_by_inverse_class_frequency():
    table = _imbalanced()

    trained = train(_spec("class_weights"), table)

    assert trained.sampling["method"] == "class_weights"
    assert trained.sampling["before"] == trained.sampling["after"]
    # The same training as training.class_weights = "balanced" gives.
    same = train(_spec("none", class_weights="balanced"), table)
    assert trained.metrics == same.metrics
    assert trained.metrics != train(_spec("none"), table).metrics


@pytest.mark.parametrize("method", ["undersample", "oversample", "class_weights"])
def test_sampling_with_training_class_weights_is_refused_naming_the_field(method):
    spec = _spec(method, class_weights="balanced")

    with pytest.raises(SpecMismatch) as info:
        dry_run(spec, _imbalanced())

    assert info.value.field == "data.sampling.method"


def test_sampling_for_regression_is_refused():
    with pytest.raises(SpecMismatch) as info:
        dry_run(_spec("oversample", task="regression"), _imbalanced().drop_columns(["label"]))

    assert info.value.field == "data.sampling.method"
    assert "classification" in info.value.reason
