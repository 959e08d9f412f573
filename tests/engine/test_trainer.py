"""Training: the recipe learns tiny datasets, reproducibly, and stops, diverges and cancels
the way a user is told it will."""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pytest
import torch
from torch import nn

from engine.errors import TrainingCancelled, TrainingDiverged
from engine.spec import Spec
from engine.training.recipe import train
from engine.training.trainer import EpochReport, Trainer
from tests.sample_data import linear_regression, mixed_classification


def _spec(task: str, target: str, seed: int = 0, **training) -> Spec:
    return Spec.model_validate(
        {
            "task": task,
            "target": target,
            "seed": seed,
            "training": {"epochs": 30, "learning_rate": 0.01, "device": "cpu", **training},
        }
    )


def _noise_problem(seed: int = 0, n_train: int = 24, n_val: int = 24):
    """Targets unrelated to the inputs: a wide network overfits and validation loss rises."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n_train + n_val, 4, generator=generator)
    y = torch.randn(n_train + n_val, generator=generator)
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


def _noise_trainer(spec: Spec) -> Trainer:
    # A plain torch MLP: these tests pin the loop, not the model builders.
    torch.manual_seed(spec.seed)
    model = nn.Sequential(
        nn.Linear(4, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1)
    )
    return Trainer(spec, model, torch.device("cpu"))


def test_classification_reaches_high_validation_accuracy():
    result = train(_spec("classification", "label"), pa.table(mixed_classification()))

    assert result.metrics["val_accuracy"] > 0.8
    assert result.metrics["val_loss"] == min(h["val_loss"] for h in result.fit.history)


def test_regression_reaches_high_validation_r2():
    result = train(_spec("regression", "y"), pa.table(linear_regression()))

    assert result.metrics["val_r2"] > 0.9
    assert result.metrics["val_mae"] >= 0.0


@pytest.mark.parametrize("batch_size", [1, "full"])
def test_stochastic_and_full_batch_both_train(batch_size):
    table = pa.table(linear_regression(n=80))
    spec = _spec("regression", "y", epochs=3, batch_size=batch_size, early_stopping=None)

    result = train(spec, table)

    history = result.fit.history
    assert result.fit.epochs_run == 3
    assert all(np.isfinite(list(h.values())).all() for h in history)
    assert history[-1]["train_loss"] < history[0]["train_loss"]


def test_same_spec_seed_and_data_give_identical_results():
    table = pa.table(mixed_classification(n=120))
    spec = _spec("classification", "label", seed=5, epochs=5)

    first = train(spec, table)
    second = train(spec, table)

    assert first.fit.history == second.fit.history
    assert first.metrics == second.metrics
    for name, tensor in first.model.state_dict().items():
        assert torch.equal(tensor, second.model.state_dict()[name]), name


def test_another_seed_gives_different_weights():
    table = pa.table(mixed_classification(n=120))

    first = train(_spec("classification", "label", seed=1, epochs=2), table)
    second = train(_spec("classification", "label", seed=2, epochs=2), table)

    weights = [m.model.state_dict()["0.weight"] for m in (first, second)]
    assert not torch.equal(*weights)


def test_rows_without_a_target_are_left_out_of_training():
    columns = linear_regression(n=60)
    columns["y"] = [None if i % 10 == 0 else v for i, v in enumerate(columns["y"])]

    result = train(_spec("regression", "y", epochs=2), pa.table(columns))

    assert sum(result.rows.values()) == 54
    assert result.rows["validation"] > 0 and result.rows["test"] > 0


def test_huge_learning_rate_raises_training_diverged_mentioning_the_learning_rate():
    spec = _spec(
        "regression", "y", optimizer="sgd", learning_rate=100.0, epochs=5, gradient_clip_norm=None
    )

    with pytest.raises(TrainingDiverged, match="learning rate") as info:
        train(spec, pa.table(linear_regression(n=80)))

    assert info.value.code == "diverged"
    # The message names the metric that stopped being a number, and its value.
    assert re.search(r"\b(train_loss|val_\w+) became (nan|-?inf)\b", info.value.message)


def test_cancel_check_returning_true_raises_training_cancelled():
    with pytest.raises(TrainingCancelled):
        train(
            _spec("regression", "y", epochs=5),
            pa.table(linear_regression(n=60)),
            should_cancel=lambda: True,
        )


def test_cancel_mid_training_stops_before_the_next_epoch():
    reports: list[EpochReport] = []

    with pytest.raises(TrainingCancelled):
        train(
            _spec("regression", "y", epochs=10),
            pa.table(linear_regression(n=60)),
            on_epoch=reports.append,
            should_cancel=lambda: len(reports) >= 2,
        )

    assert [r.epoch for r in reports] == [1, 2]


def test_on_epoch_is_called_once_per_epoch_in_order():
    reports: list[EpochReport] = []
    spec = _spec("classification", "label", epochs=6, early_stopping=None)

    result = train(spec, pa.table(mixed_classification(n=80)), on_epoch=reports.append)

    assert [r.epoch for r in reports] == list(range(1, 7))
    assert result.fit.epochs_run == 6
    assert all(r.epochs == 6 for r in reports)
    assert all(r.samples_per_second > 0 for r in reports)
    assert [r.metrics for r in reports] == [
        {k: v for k, v in h.items() if k not in ("epoch", "learning_rate")}
        for h in result.fit.history
    ]
    assert [r.learning_rate for r in reports] == [h["learning_rate"] for h in result.fit.history]
    for report in reports:
        assert set(report.health) == {"grad_norm", "grad_norm_peak", "dead_relu_fraction"}
        assert all(v >= 0 for v in report.health["grad_norm"].values())
        assert 0.0 <= report.health["dead_relu_fraction"] <= 1.0
        assert isinstance(report.warnings, list)


def test_early_stopping_stops_before_epochs_and_restores_the_best_weights():
    spec = Spec.model_validate(
        {
            "task": "regression",
            "target": "y",
            "model": {"hidden": [64, 64], "dropout": 0.0},
            "training": {
                "epochs": 300,
                "learning_rate": 0.01,
                "batch_size": "full",
                "early_stopping": {"patience": 3},
                "device": "cpu",
            },
        }
    )
    x_train, y_train, x_val, y_val = _noise_problem()
    trainer = _noise_trainer(spec)

    fit = trainer.fit(x_train, y_train, x_val, y_val)

    assert fit.stopped_early
    assert fit.epochs_run < 300
    assert fit.best_epoch <= fit.epochs_run
    assert fit.epochs_run - fit.best_epoch == 3
    val_losses = [h["val_loss"] for h in fit.history]
    assert len(val_losses) == fit.epochs_run
    assert fit.best_metrics["val_loss"] == min(val_losses)
    assert fit.best_metrics["val_loss"] < val_losses[-1]
    # The model left behind is the best epoch's, not the last one's.
    restored = trainer.evaluate(x_val.to(trainer.device), y_val.to(trainer.device))
    assert restored["val_loss"] == pytest.approx(fit.best_metrics["val_loss"], rel=1e-6)


def test_without_early_stopping_every_epoch_runs():
    spec = _spec("regression", "y", epochs=8, batch_size="full", early_stopping=None)
    x_train, y_train, x_val, y_val = _noise_problem()

    fit = _noise_trainer(spec).fit(x_train, y_train, x_val, y_val)

    assert fit.epochs_run == 8
    assert not fit.stopped_early
    assert len(fit.history) == 8


def test_fit_result_metrics_are_those_of_the_weights_left_in_the_model():
    spec = _spec("regression", "y", epochs=8, batch_size="full", early_stopping=None)
    x_train, y_train, x_val, y_val = _noise_problem()
    trainer = _noise_trainer(spec)

    fit = trainer.fit(x_train, y_train, x_val, y_val)

    # Without early stopping nothing is restored: the model is the last epoch's.
    last = {k: v for k, v in fit.history[-1].items() if k not in ("epoch", "learning_rate")}
    assert fit.metrics == last
    assert trainer.evaluate(x_val, y_val)["val_loss"] == pytest.approx(last["val_loss"], rel=1e-6)
    assert fit.best_metrics["val_loss"] == min(h["val_loss"] for h in fit.history)


def test_warnings_in_the_fit_result_are_those_reported_epoch_by_epoch():
    spec = _spec("regression", "y", epochs=60, batch_size="full", early_stopping=None)
    reports: list[EpochReport] = []

    fit = _noise_trainer(spec).fit(*_noise_problem(), on_epoch=reports.append)

    assert fit.warnings == [w for r in reports for w in r.warnings]
    assert "overfitting" in [w["code"] for w in fit.warnings]
    for warning in fit.warnings:
        assert set(warning) == {"code", "epoch", "message"}
        assert 1 <= warning["epoch"] <= 60
