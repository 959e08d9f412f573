"""The final model is scored once on the test split, with scikit-learn's metrics, in the
target's own units; the numbers here are checked against scikit-learn on the same predictions."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
import torch
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    mean_absolute_error,
    precision_score,
    r2_score,
    recall_score,
    roc_auc_score,
    root_mean_squared_error,
)

from engine.data.split import split_rows
from engine.evaluation import classification_report
from engine.spec import Spec
from engine.training.preparation import prepare
from engine.training.recipe import train
from tests.sample_data import linear_regression, mixed_classification


def _spec(task: str, target: str | None, epochs: int = 5, **data) -> Spec:
    return Spec.model_validate(
        {
            "task": task,
            "target": target,
            "data": data,
            "training": {"epochs": epochs, "learning_rate": 0.01, "device": "cpu"},
        }
    )


def _outputs(trained, x: torch.Tensor) -> torch.Tensor:
    trained.model.train(False)
    with torch.inference_mode():
        return trained.model(x).float()


def test_classification_metrics_equal_scikit_learns_on_the_same_predictions():
    table = pa.table(mixed_classification(n=200))
    spec = _spec("classification", "label")

    trained = train(spec, table)

    prepared = prepare(spec, table)  # the same split and pipeline: the recipe is seeded
    y = prepared.y_test.numpy()
    probabilities = torch.softmax(_outputs(trained, prepared.x_test), dim=1).numpy()
    predicted = probabilities.argmax(axis=1)
    report = trained.evaluation
    assert report["rows"] == len(y) == trained.rows["test"] == 20
    assert report["metrics"] == pytest.approx(
        {
            "accuracy": accuracy_score(y, predicted),
            "balanced_accuracy": balanced_accuracy_score(y, predicted),
            "precision_macro": precision_score(y, predicted, average="macro", zero_division=0),
            "recall_macro": recall_score(y, predicted, average="macro", zero_division=0),
            "f1_macro": f1_score(y, predicted, average="macro", zero_division=0),
            "roc_auc": roc_auc_score(y, probabilities[:, 1]),
        }
    )
    assert report["confusion_matrix"] == {
        "labels": ["no", "yes"],
        "matrix": confusion_matrix(y, predicted).tolist(),
    }
    # The model folder's metrics.json carries the report.
    saved = json.loads(trained.files()["metrics.json"])
    assert saved["evaluation"] == json.loads(json.dumps(report))
    assert saved["leakage_removed"] == {"validation": 0, "test": 0}


def test_multiclass_roc_auc_is_one_vs_rest_and_skipped_with_a_note_when_a_class_is_absent():
    generator = torch.Generator().manual_seed(0)
    outputs = torch.randn(30, 3, generator=generator)
    labels = np.arange(30) % 3
    probabilities = torch.softmax(outputs.double(), dim=1).numpy()

    full = classification_report(outputs, labels, ["a", "b", "c"])
    partial = classification_report(outputs[labels != 2], labels[labels != 2], ["a", "b", "c"])

    expected = roc_auc_score(labels, probabilities, multi_class="ovr")
    assert full["metrics"]["roc_auc"] == pytest.approx(expected)
    assert "roc_auc" not in partial["metrics"]
    assert partial["notes"] == ["roc_auc not computed: no test rows of class 'c'"]
    assert np.array(partial["confusion_matrix"]["matrix"]).shape == (3, 3)


def test_regression_metrics_are_in_the_targets_units():
    table = pa.table(linear_regression(n=200))
    spec = _spec("regression", "y")

    trained = train(spec, table)

    prepared = prepare(spec, table)
    split = split_rows(200, spec.data.split, spec.seed)
    truth = np.asarray(table.column("y").to_pylist())[split.test]
    inputs = prepared.x_test.numpy()
    assert prepared.pipeline.decode_values(prepared.y_test.numpy()[:, None], inputs)[
        :, 0
    ] == pytest.approx(truth, rel=1e-5)
    raw = _outputs(trained, prepared.x_test).numpy().reshape(-1, 1)
    predicted = prepared.pipeline.decode_values(raw, inputs)[:, 0]
    assert trained.evaluation["metrics"] == pytest.approx(
        {
            "mae": mean_absolute_error(truth, predicted),
            "rmse": root_mean_squared_error(truth, predicted),
            "r2": r2_score(truth, predicted),
        },
        rel=1e-5,
    )


def test_forecasting_is_scored_as_regression_on_the_latest_windows():
    t = np.arange(120, dtype=float)
    table = pa.table({"y": np.sin(t / 5) * 10 + 50})

    trained = train(_spec("forecasting", "y", window=6, horizon=2), table)

    assert trained.evaluation["rows"] == trained.rows["test"] > 0
    assert set(trained.evaluation["metrics"]) == {"mae", "rmse", "r2"}


def test_reconstruction_reports_the_mean_reconstruction_error():
    columns = linear_regression(n=100)
    table = pa.table(columns)
    spec = _spec("reconstruction", None)

    trained = train(spec, table)

    x = prepare(spec, table).x_test
    expected = (_outputs(trained, x) - x).square().mean().item()
    assert trained.evaluation["metrics"] == {"reconstruction_error": pytest.approx(expected)}


def test_a_dataset_too_small_for_a_test_row_trains_and_says_it_was_not_evaluated():
    table = pa.table({"a": [0.0, 1.0, 2.0, 3.0], "y": [0.0, 2.0, 4.0, 6.0]})

    trained = train(_spec("regression", "y", epochs=2), table)

    assert trained.rows["test"] == 0
    assert trained.evaluation == {
        "rows": 0,
        "metrics": {},
        "notes": ["not evaluated: the test split has no rows"],
    }
