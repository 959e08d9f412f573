"""Data as the user splits it: given validation and test sets, validation 0 (train on every
row), and a trained model scored on a whole labelled dataset."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import torch

from engine.data.arrays.dataset import ArrayData
from engine.errors import SpecMismatch
from engine.evaluation import evaluate_dataset
from engine.spec import Spec
from engine.training.preparation import GivenSplits, dry_run, prepare
from engine.training.recipe import train
from tests.sample_data import mixed_classification


def _spec(task: str = "classification", target: str | None = "label", **sections) -> Spec:
    training = {"epochs": 3, "learning_rate": 0.01, "device": "cpu", **sections.pop("training", {})}
    return Spec.model_validate({"task": task, "target": target, "training": training, **sections})


NO_STOPPING = {"early_stopping": None}


def test_validation_zero_trains_on_every_non_test_row_for_the_given_epochs():
    table = pa.table(mixed_classification(n=200))
    spec = _spec(training=NO_STOPPING | {"epochs": 4}, data={"split": {"validation": 0}})

    trained = train(spec, table)

    assert trained.rows["validation"] == 0
    assert trained.rows["train"] + trained.rows["test"] == 200
    assert trained.fit.epochs_run == 4 and trained.fit.best_epoch == 4
    # Each epoch has a training loss and nothing measured on validation rows.
    assert set(trained.fit.history[-1]) == {"epoch", "train_loss", "learning_rate"}
    assert trained.evaluation["rows"] == trained.rows["test"]


@pytest.mark.parametrize(
    ("training", "field"),
    [
        ({}, "data.split.validation"),  # early stopping is on by default
        (
            NO_STOPPING | {"schedule": {"type": "reduce_on_plateau"}},
            "data.split.validation",
        ),
    ],
)
def test_validation_zero_is_refused_where_a_validation_set_is_needed(training, field):
    table = pa.table(mixed_classification(n=60))
    spec = _spec(training=training, data={"split": {"validation": 0}})
    with pytest.raises(SpecMismatch) as caught:
        dry_run(spec, table)
    assert caught.value.field == field
    assert "validation" in caught.value.reason


def test_a_given_validation_set_allows_early_stopping_with_validation_zero():
    rows = mixed_classification(n=160)
    table = pa.table(rows)
    given = GivenSplits(validation=table.slice(120), test=table.slice(100, 20))
    spec = _spec(data={"split": {"validation": 0, "test": 0}})

    prepared = prepare(spec, table.slice(0, 100), given=given)

    assert prepared.rows == {"train": 100, "validation": 40, "test": 20}


def test_given_sets_take_no_training_rows_and_the_pipeline_is_fitted_on_training_only():
    train_table = pa.table(mixed_classification(n=120, seed=1))
    test_rows = mixed_classification(n=40, seed=2)
    # Shifted far: a pipeline fitted on these rows would have another mean.
    test_rows["x1"] = [v + 1000.0 for v in test_rows["x1"]]
    test_table = pa.table(test_rows)
    spec = _spec(training=NO_STOPPING)

    prepared = prepare(spec, train_table, given=GivenSplits(test=test_table))

    # The default split's validation share comes from the training set; no test rows do.
    assert prepared.rows["test"] == 40
    assert prepared.rows["train"] + prepared.rows["validation"] == 120
    numeric = {f.name: f for f in prepared.pipeline.preprocessor.features}["x1"]
    assert abs(numeric.offset) < 100

    trained = train(spec, train_table, given=GivenSplits(test=test_table))
    assert trained.evaluation["rows"] == 40
    assert {"accuracy", "balanced_accuracy", "f1_macro", "roc_auc"} <= set(
        trained.evaluation["metrics"]
    )


def test_a_given_test_set_repeating_training_rows_is_kept_and_noted():
    table = pa.table(mixed_classification(n=100))
    spec = _spec(training=NO_STOPPING, data={"split": {"validation": 0}})
    prepared = prepare(spec, table, given=GivenSplits(test=table.slice(0, 10)))
    assert prepared.rows == {"train": 100, "validation": 0, "test": 10}
    assert any("10 of the 10 rows of the test dataset repeat" in n for n in prepared.notes)


def test_folds_refuse_a_given_validation_set():
    table = pa.table(mixed_classification(n=60))
    spec = _spec(data={"split": {"folds": 2}})
    with pytest.raises(SpecMismatch) as caught:
        dry_run(spec, table, given=GivenSplits(validation=table))
    assert caught.value.field == "data.split.folds"


def _arrays(n: int, seed: int, classes: list[str]) -> ArrayData:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    x = (rng.normal(size=(n, 6)) + y[:, None] * 1.5).astype(np.float32)
    # `classes` may list the labels in another order: y indexes into it.
    labels = np.array(["a", "b"])[y]
    return ArrayData(x, np.array([classes.index(v) for v in labels]), classes, "vector")


def test_given_array_sets_map_labels_by_value():
    spec = _spec(target="y", training=NO_STOPPING, data={"split": {"validation": 0}})
    training = _arrays(120, 0, ["a", "b"])
    test = _arrays(50, 1, ["b", "a"])  # the same labels, stored in the other order

    trained = train(spec, training, given=GivenSplits(test=test))

    assert trained.rows == {"train": 120, "validation": 0, "test": 50}
    assert trained.evaluation["metrics"]["accuracy"] > 0.7
    assert trained.evaluation["confusion_matrix"]["labels"] == ["a", "b"]


def _series(n: int, offset: float) -> pa.Table:
    t = np.arange(n, dtype=np.float64)
    return pa.table({"value": np.sin(t / 5.0) * 3 + offset})


def test_a_given_test_series_is_windowed_on_its_own_and_scored_per_horizon_step():
    spec = _spec(
        task="forecasting",
        target="value",
        training=NO_STOPPING,
        data={"window": 8, "horizon": 3, "split": {"validation": 0}},
    )
    trained = train(spec, _series(120, 0.0), given=GivenSplits(test=_series(40, 0.5)))

    assert trained.rows["test"] == 40 - 8 - 3 + 1
    assert trained.rows["validation"] == 0
    steps = trained.evaluation["per_horizon"]
    assert [s["step"] for s in steps] == [1, 2, 3]
    assert all(s["rmse"] >= s["mae"] >= 0 for s in steps)


def test_a_trained_model_scores_a_stored_dataset_as_its_test_report_would():
    table = pa.table(mixed_classification(n=200))
    spec = _spec(training=NO_STOPPING)
    trained = train(spec, table)
    prepared = prepare(spec, table)

    # The test rows alone, as a dataset: the same numbers as the job's own report.
    test_rows = pa.table(mixed_classification(n=200)).take(_test_rows(spec, table, prepared))
    report = evaluate_dataset(
        trained.spec, trained.pipeline, trained.model, test_rows, torch.device("cpu")
    )
    assert report["rows"] == trained.evaluation["rows"]
    assert report["metrics"] == pytest.approx(trained.evaluation["metrics"])

    # A class the model never saw is left out, and noted.
    rows = mixed_classification(n=20)
    rows["label"] = ["maybe"] * 5 + rows["label"][5:]
    report = evaluate_dataset(
        trained.spec, trained.pipeline, trained.model, pa.table(rows), torch.device("cpu")
    )
    assert report["rows"] == 15
    assert any("never saw" in note for note in report["notes"])


def _test_rows(spec: Spec, table: pa.Table, prepared) -> np.ndarray:
    from engine.data.split import split_rows

    labels = pa.compute.dictionary_encode(table.column("label")).combine_chunks().indices
    split = split_rows(table.num_rows, spec.data.split, spec.seed, labels.to_numpy())
    assert len(split.test) == prepared.rows["test"]
    return split.test


def test_a_model_refuses_a_dataset_of_another_kind():
    table = pa.table(mixed_classification(n=80))
    trained = train(_spec(training=NO_STOPPING), table)
    with pytest.raises(Exception, match="arrays"):
        evaluate_dataset(
            trained.spec,
            trained.pipeline,
            trained.model,
            _arrays(10, 0, ["a", "b"]),
            torch.device("cpu"),
        )


def test_given_rows_of_an_unseen_class_or_no_target_are_left_out_with_a_note():
    table = pa.table(mixed_classification(n=100))
    rows = mixed_classification(n=20, seed=5)
    rows["label"] = ["maybe"] * 3 + [None] * 2 + rows["label"][5:]
    spec = _spec(training=NO_STOPPING, data={"split": {"validation": 0}})
    prepared = prepare(spec, table, given=GivenSplits(test=pa.table(rows)))
    assert prepared.rows["test"] == 15
    assert "test dataset: 2 rows with no target were left out" in prepared.notes
    assert "test dataset: 3 rows of a class the model never saw were left out" in prepared.notes


def test_cross_validation_then_a_final_refit_on_every_non_test_row():
    table = pa.table(mixed_classification(n=120))
    spec = _spec(training=NO_STOPPING, data={"split": {"validation": 0, "folds": 3}})
    trained = train(spec, table)
    folds = trained.cross_validation["folds"]
    assert [f["rows"]["validation"] for f in folds] == [0, 0, 0]
    assert all(f["epochs_run"] == 3 for f in folds)
    assert trained.rows["validation"] == 0
    assert trained.rows["train"] + trained.rows["test"] == 120
