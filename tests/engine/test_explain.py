"""Integrated-gradients explanations: raw column names for tables (one-hot and embedded
columns summed back), per-step attributions for sequences and windows, saliency for images;
attributions add up to the output's move from the baseline; clear refusals."""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow as pa
import pytest
import torch

from engine.data.arrays.dataset import read_npz
from engine.explain import InvalidTarget, NotExplainable, baseline_input, explain
from engine.inference import Predictor
from engine.spec import Spec
from engine.training.recipe import train
from tests.sample_data import linear_regression, mixed_classification, npz_bytes


def _predictor(spec: dict, data) -> Predictor:
    spec = {**spec, "training": {"epochs": 10, "learning_rate": 0.01, "device": "cpu"}}
    trained = train(Spec.model_validate(spec), data)
    return Predictor(trained.spec, trained.pipeline, trained.model)


@pytest.fixture(scope="module")
def classifier() -> Predictor:
    return _predictor(
        {"task": "classification", "target": "label"}, pa.table(mixed_classification())
    )


@pytest.fixture(scope="module")
def embedded() -> Predictor:
    spec = {
        "task": "classification",
        "target": "label",
        "data": {
            "preprocess": {"columns": {"colour": {"encoding": "embedding", "embedding_dim": 3}}}
        },
    }
    return _predictor(spec, pa.table(mixed_classification()))


def _rows(columns: dict, target: str, n: int = 3) -> list[dict]:
    return pa.table(columns).drop([target]).slice(0, n).to_pylist()


def test_table_attributions_are_per_raw_column_and_add_up(classifier):
    rows = _rows(mixed_classification(), "label")
    answer = explain(classifier, rows, n_steps=64)

    assert answer["method"] == "integrated_gradients" and answer["n_steps"] == 64
    inputs = torch.from_numpy(classifier.pipeline.inputs(rows))
    base = torch.from_numpy(baseline_input(classifier.pipeline))
    with torch.no_grad():
        moved = classifier.model(inputs) - classifier.model(base)
    classes = classifier.pipeline.classes()
    for i, explanation in enumerate(answer["explanations"]):
        assert set(explanation["attributions"]) == {"x1", "x2", "colour"}  # colour is one-hot
        assert explanation["target"] == explanation["prediction"]["label"]
        k = classes.index(explanation["target"])
        total = sum(explanation["attributions"].values())
        assert total == pytest.approx(float(moved[i, k]), abs=0.02)


def test_a_requested_class_is_explained_and_an_unknown_one_refused(classifier):
    rows = _rows(mixed_classification(), "label", 1)
    assert explain(classifier, rows, target="no")["explanations"][0]["target"] == "no"
    with pytest.raises(InvalidTarget, match="'maybe' is not a class"):
        explain(classifier, rows, target="maybe")


def test_embedded_columns_are_summed_back_to_their_source(embedded):
    rows = _rows(mixed_classification(), "label", 2)
    answer = explain(embedded, rows)
    assert set(answer["explanations"][0]["attributions"]) == {"x1", "x2", "colour"}


def test_regression_explains_its_value_and_refuses_a_class_target():
    model = _predictor({"task": "regression", "target": "y"}, pa.table(linear_regression()))
    rows = _rows(linear_regression(), "y", 2)
    answer = explain(model, rows)
    attributions = answer["explanations"][0]["attributions"]
    assert set(attributions) == {"a", "b"}
    with pytest.raises(InvalidTarget):
        explain(model, rows, target=2)


def test_images_get_a_saliency_map_and_sequences_per_step_attributions():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 40)
    x = (np.where(y == 1, 200, 40)[:, None, None] + rng.integers(-30, 30, (80, 8, 8))).astype(
        np.uint8
    )
    image = _predictor(
        {"task": "classification", "target": "y", "model": {"family": "cnn", "filters": [4]}},
        read_npz(io.BytesIO(npz_bytes(x=x, y=y))),
    )
    saliency = explain(image, [x[0].tolist()])["explanations"][0]["attributions"]
    assert np.array(saliency).shape == (8, 8)

    seq = rng.normal(size=(80, 12, 2)).astype(np.float32)
    target = (seq[:, -1, 0] > 0).astype(np.int64)
    sequence = _predictor(
        {"task": "classification", "target": "y", "model": {"family": "rnn", "hidden": 8}},
        read_npz(io.BytesIO(npz_bytes(x=seq, y=target)), kind="sequence"),
    )
    explanation = explain(sequence, [seq[0].tolist()])["explanations"][0]
    assert len(explanation["attributions"]) == 12
    assert np.array(explanation["per_channel"]).shape == (12, 2)


def test_autoencoders_are_not_explained():
    columns = linear_regression()
    model = _predictor({"task": "reconstruction"}, pa.table(columns))
    with pytest.raises(NotExplainable, match="autoencoders"):
        explain(model, pa.table(columns).slice(0, 1).to_pylist())


def test_training_reports_permutation_importance_per_raw_column():
    spec = {
        "task": "classification",
        "target": "label",
        "data": {"split": {"test": 0.25}},
        "training": {"epochs": 15, "learning_rate": 0.01, "device": "cpu"},
    }
    trained = train(Spec.model_validate(spec), pa.table(mixed_classification()))
    report = trained.report()["permutation_importance"]
    assert report["metric"] == "accuracy" and report["repeats"] == 5
    assert report["rows"] == trained.evaluation["rows"]
    assert {row["feature"] for row in report["importances"]} == {"x1", "x2", "colour"}
    # x1, x2 and colour all decide the label; a shuffled one costs accuracy.
    assert all(row["mean"] > 0 for row in report["importances"])
    assert json.loads(trained.files()["metrics.json"])["permutation_importance"] == report
