"""k-fold cross-validation: k fold models scored on their held-out rows, reported with mean and
standard deviation; the final model alone reports epochs and is kept."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from engine.errors import DataError, SpecMismatch, TrainingCancelled
from engine.inference import Predictor
from engine.spec import Spec
from engine.training.preparation import dry_run
from engine.training.recipe import FoldReport, train
from engine.training.trainer import EpochReport
from tests.sample_data import linear_regression, mixed_classification


def _spec(task: str, target: str, folds: int, **data) -> Spec:
    return Spec.model_validate(
        {
            "task": task,
            "target": target,
            "data": {"split": {"folds": folds}, **data},
            "training": {"epochs": 3, "learning_rate": 0.01, "device": "cpu"},
        }
    )


def test_a_cross_validated_job_reports_every_fold_their_mean_and_std_and_keeps_one_model():
    columns = mixed_classification(n=120)
    epochs: list[EpochReport] = []
    folds: list[FoldReport] = []

    trained = train(
        _spec("classification", "label", 3),
        pa.table(columns),
        on_epoch=epochs.append,
        on_fold=folds.append,
    )

    cv = trained.cross_validation
    assert [f["fold"] for f in cv["folds"]] == [1, 2, 3] == [f.fold for f in folds]
    assert set(cv["mean"]) == set(cv["std"]) == set(trained.evaluation["metrics"])
    accuracies = [f["metrics"]["accuracy"] for f in cv["folds"]]
    assert cv["mean"]["accuracy"] == pytest.approx(np.mean(accuracies))
    assert cv["std"]["accuracy"] == pytest.approx(np.std(accuracies))
    # Every non-test row is held out by exactly one fold.
    assert sum(f["rows"]["test"] for f in cv["folds"]) == 120 - trained.rows["test"]
    # Epoch reports and the history are the final model's alone.
    assert [e.epoch for e in epochs] == [h["epoch"] for h in trained.fit.history]
    assert len(epochs) == trained.fit.epochs_run
    predictions = Predictor.from_files(trained.files()).predict(
        pa.table(columns).drop(["label"]).to_pylist()[:3]
    )
    assert all(p["label"] in ("yes", "no") for p in predictions)


def test_regression_folds_report_errors_in_target_units():
    trained = train(_spec("regression", "y", 2), pa.table(linear_regression(n=80)))

    assert len(trained.cross_validation["folds"]) == 2
    assert set(trained.cross_validation["mean"]) == {"mae", "rmse", "r2"}


def test_repeated_cross_validation_reports_every_fold_of_every_repeat_and_their_mean():
    spec = _spec("regression", "y", 2).model_copy(deep=True)
    spec.data.split.repeats = 3
    folds: list[FoldReport] = []

    trained = train(spec, pa.table(linear_regression(n=80)), on_fold=folds.append)

    cv = trained.cross_validation
    assert cv["repeats"] == 3
    assert [f["fold"] for f in cv["folds"]] == [1, 2, 3, 4, 5, 6] == [f.fold for f in folds]
    assert [f["repeat"] for f in cv["folds"]] == [1, 1, 2, 2, 3, 3]
    assert {f.folds for f in folds} == {6}
    maes = [f["metrics"]["mae"] for f in cv["folds"]]
    assert cv["mean"]["mae"] == pytest.approx(np.mean(maes))


def test_forecasting_refuses_repeated_folds():
    t = np.arange(150, dtype=float)
    spec = _spec("forecasting", "y", 3, window=5, horizon=2).model_copy(deep=True)
    spec.data.split.repeats = 2

    with pytest.raises(SpecMismatch) as info:
        dry_run(spec, pa.table({"y": np.sin(t / 4)}))
    assert info.value.field == "data.split.repeats"


def test_forecasting_folds_train_on_the_past_only():
    t = np.arange(150, dtype=float)
    spec = _spec("forecasting", "y", 3, window=5, horizon=2)

    trained = train(spec, pa.table({"y": np.sin(t / 4) * 3 + t / 50}))

    rows = [f["rows"] for f in trained.cross_validation["folds"]]
    # An expanding window: each fold trains on more of the past than the one before.
    assert rows[0]["train"] < rows[1]["train"] < rows[2]["train"]


def test_cancel_is_honoured_during_the_folds():
    folds: list[FoldReport] = []

    with pytest.raises(TrainingCancelled):
        train(
            _spec("classification", "label", 3),
            pa.table(mixed_classification(n=120)),
            should_cancel=lambda: len(folds) >= 1,
            on_fold=folds.append,
        )

    assert len(folds) == 1


def test_too_few_rows_for_the_folds_are_refused_by_the_dry_run():
    spec = _spec("regression", "y", 20)

    with pytest.raises(DataError, match="data.split.folds"):
        dry_run(spec, pa.table(linear_regression(n=30)))
