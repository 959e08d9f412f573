"""A model folder alone predicts from raw rows, and names every bad value by row and column."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
import torch
from safetensors.torch import load as load_safetensors

import engine.inference
from engine.artifacts import MODEL_FILES, load_model
from engine.data.preprocess.fit import MAX_CATEGORIES
from engine.errors import InvalidInstances, TrainingCancelled
from engine.inference import Predictor
from engine.spec import Spec
from engine.training.checkpoint import checkpoint_to_bytes
from engine.training.recipe import TrainedModel, train
from tests.sample_data import linear_regression, mixed_classification


def _spec(task: str, target: str, epochs: int) -> Spec:
    return Spec.model_validate(
        {
            "task": task,
            "target": target,
            "training": {"epochs": epochs, "learning_rate": 0.01, "device": "cpu"},
        }
    )


def _rows(columns: dict[str, list], target: str) -> list[dict]:
    return pa.table(columns).drop([target]).to_pylist()


@pytest.fixture(scope="module")
def classifier() -> TrainedModel:
    return train(_spec("classification", "label", 15), pa.table(mixed_classification()))


@pytest.fixture(scope="module")
def regressor() -> TrainedModel:
    return train(_spec("regression", "y", 40), pa.table(linear_regression()))


def test_model_files_are_exactly_spec_weights_preprocess_and_metrics(classifier):
    files = classifier.files()

    assert set(files) == {"spec.json", "weights.safetensors", "preprocess.json", "metrics.json"}
    assert set(files) == set(MODEL_FILES)
    assert all(isinstance(data, bytes) for data in files.values())


def test_weights_load_with_safetensors_and_match_the_model(classifier):
    weights = load_safetensors(classifier.files()["weights.safetensors"])

    state = classifier.model.state_dict()
    assert set(weights) == set(state)
    for name, tensor in state.items():
        assert torch.equal(weights[name], tensor), name


def test_spec_and_metrics_files_are_readable_json(classifier):
    files = classifier.files()

    assert Spec.model_validate_json(files["spec.json"]) == classifier.spec
    metrics = json.loads(files["metrics.json"])
    assert metrics["val_accuracy"] == classifier.metrics["val_accuracy"]
    assert metrics["best_epoch"] == classifier.fit.best_epoch
    assert metrics["epochs_run"] == classifier.fit.epochs_run
    assert metrics["parameters"] > 0
    assert metrics["rows"] == classifier.rows


def test_loaded_model_has_the_trained_weights(classifier):
    spec, pipeline, model = load_model(classifier.files())

    assert spec == classifier.spec
    assert pipeline.preprocessor == classifier.pipeline.preprocessor
    assert not model.training
    for name, tensor in classifier.model.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor), name


def test_classifier_predicts_training_classes_with_probabilities_summing_to_one(classifier):
    rows = _rows(mixed_classification(n=30, seed=1), "label")
    classes = classifier.pipeline.preprocessor.target.classes

    predictions = Predictor.from_files(classifier.files()).predict(rows)

    assert len(predictions) == len(rows)
    for prediction in predictions:
        assert prediction["label"] in classes
        probabilities = prediction["probabilities"]
        assert set(probabilities) == {str(c) for c in classes}
        assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-5)
        assert max(probabilities, key=probabilities.get) == str(prediction["label"])


def test_classifier_is_mostly_right_on_fresh_rows(classifier):
    fresh = mixed_classification(n=100, seed=2)

    predictions = Predictor.from_files(classifier.files()).predict(_rows(fresh, "label"))

    hits = [p["label"] == truth for p, truth in zip(predictions, fresh["label"], strict=True)]
    assert np.mean(hits) > 0.8


def test_predictions_from_files_equal_those_of_the_in_memory_model(classifier):
    fresh = mixed_classification(n=40, seed=3)
    table = pa.table(fresh).drop(["label"])

    predictions = Predictor.from_files(classifier.files()).predict(table.to_pylist())

    model = classifier.model.eval()
    with torch.no_grad():
        x = torch.from_numpy(classifier.pipeline.preprocessor.transform(table))
        expected = torch.softmax(model(x), dim=1).numpy()
    keys = [str(c) for c in classifier.pipeline.preprocessor.target.classes]
    got = np.array([[p["probabilities"][k] for k in keys] for p in predictions])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_regression_returns_values_in_the_original_units(regressor):
    fresh = linear_regression(n=50, seed=4)

    predictions = Predictor.from_files(regressor.files()).predict(_rows(fresh, "y"))

    values = np.array([p["value"] for p in predictions])
    truth = np.array(fresh["y"])
    # Targets centre on 10 with a spread of about 4: standardised outputs would sit near 0.
    assert np.abs(values - truth).mean() < 0.5
    assert values.mean() == pytest.approx(truth.mean(), abs=0.5)


def test_missing_column_is_named_by_row_and_column(classifier):
    rows = _rows(mixed_classification(n=3, seed=1), "label")
    del rows[1]["x1"]

    with pytest.raises(InvalidInstances) as info:
        Predictor.from_files(classifier.files()).predict(rows)

    fields = [p["field"] for p in info.value.problems]
    assert fields == ["instances[1].x1"]
    assert "x1" in info.value.problems[0]["reason"]


def test_string_for_a_numeric_column_is_named_by_row_and_column(classifier):
    rows = _rows(mixed_classification(n=3, seed=1), "label")
    rows[2]["x1"] = "4.2"

    with pytest.raises(InvalidInstances) as info:
        Predictor.from_files(classifier.files()).predict(rows)

    assert [p["field"] for p in info.value.problems] == ["instances[2].x1"]
    assert info.value.code == "invalid_instances"


def test_boolean_for_a_numeric_column_is_rejected(classifier):
    rows = _rows(mixed_classification(n=1, seed=1), "label")
    rows[0]["x2"] = True

    with pytest.raises(InvalidInstances) as info:
        Predictor.from_files(classifier.files()).predict(rows)

    assert info.value.problems[0]["field"] == "instances[0].x2"


def test_row_that_is_not_an_object_is_named(classifier):
    rows = [["not", "an", "object"], *_rows(mixed_classification(n=1, seed=1), "label")]

    with pytest.raises(InvalidInstances) as info:
        Predictor.from_files(classifier.files()).predict(rows)

    assert info.value.problems[0]["field"] == "instances[0]"


def test_null_numeric_value_is_accepted_and_imputed(classifier):
    predictor = Predictor.from_files(classifier.files())
    fill = next(f.fill for f in classifier.pipeline.preprocessor.features if f.name == "x2")
    row = _rows(mixed_classification(n=1, seed=1), "label")[0]

    with_null = predictor.predict([{**row, "x2": None}])
    with_fill = predictor.predict([{**row, "x2": fill}])

    assert with_null == with_fill


def test_null_and_unseen_categories_are_accepted(classifier):
    row = _rows(mixed_classification(n=1, seed=1), "label")[0]

    predictions = Predictor.from_files(classifier.files()).predict(
        [{**row, "colour": None}, {**row, "colour": "purple"}]
    )

    assert predictions[0] == predictions[1]
    assert predictions[0]["label"] in classifier.pipeline.preprocessor.target.classes


def test_extra_columns_are_ignored(classifier):
    rows = _rows(mixed_classification(n=5, seed=1), "label")
    predictor = Predictor.from_files(classifier.files())

    plain = predictor.predict(rows)
    extra = predictor.predict([{**row, "label": "yes", "note": "hi"} for row in rows])

    assert plain == extra


def test_no_instances_give_no_predictions(classifier):
    assert Predictor.from_files(classifier.files()).predict([]) == []


def test_boolean_feature_accepts_true_and_false_at_predict_time():
    table = pa.table(
        {
            "flag": [True, False] * 20,
            "x": [float(i % 7) for i in range(40)],
            "label": ["on", "off"] * 20,
        }
    )
    trained = train(_spec("classification", "label", 30), table)

    predictions = Predictor.from_files(trained.files()).predict(
        [{"flag": True, "x": 1.0}, {"flag": False, "x": 1.0}]
    )

    assert [p["label"] for p in predictions] == ["on", "off"]
    # A boolean takes the cell-by-cell checks, plain numbers the fast path: same encoding.
    np.testing.assert_array_equal(
        trained.pipeline.inputs([{"flag": True, "x": 1.0}, {"flag": False, "x": None}]),
        trained.pipeline.inputs([{"flag": 1, "x": 1.0}, {"flag": 0, "x": None}]),
    )


def test_integer_class_labels_come_back_as_integers():
    columns = mixed_classification(n=80)
    columns["label"] = [1 if v == "yes" else 0 for v in columns["label"]]
    trained = train(_spec("classification", "label", 3), pa.table(columns))

    predictions = Predictor.from_files(trained.files()).predict(_rows(columns, "label")[:5])

    assert all(p["label"] in (0, 1) and isinstance(p["label"], int) for p in predictions)
    assert all(set(p["probabilities"]) == {"0", "1"} for p in predictions)


# --- data.preprocess through the model folder -------------------------------------------------


def _cities(n: int = 300, seed: int = 0) -> dict[str, list]:
    """A label set by a high-cardinality city (120 of them) and one number."""
    rng = np.random.default_rng(seed)
    effect = rng.normal(size=120)
    city = rng.integers(0, 120, size=n)
    x = rng.normal(size=n)
    return {
        "x": x.tolist(),
        "city": [f"c{c}" for c in city],
        "label": np.where(effect[city] + 0.5 * x > 0, "yes", "no").tolist(),
    }


def _embedding_spec(epochs: int) -> Spec:
    return Spec.model_validate(
        {
            "task": "classification",
            "target": "label",
            "data": {"preprocess": {"columns": {"city": {"encoding": "embedding"}}}},
            "model": {"family": "mlp", "hidden": [16]},
            "training": {"epochs": epochs, "learning_rate": 0.01, "device": "cpu"},
        }
    )


@pytest.fixture(scope="module")
def embedded() -> TrainedModel:
    return train(_embedding_spec(3), pa.table(_cities(n=400)))


def test_an_embedding_column_trains_and_predicts_from_the_model_folder(embedded):
    files = embedded.files()
    weights = load_safetensors(files["weights.safetensors"])
    rows = _rows(_cities(n=6, seed=1), "label")
    rows += [{"x": 0.3, "city": "nowhere"}, {"x": None, "city": None}]

    predictor = Predictor.from_files(files)
    predictions = predictor.predict(rows)

    city = next(f for f in embedded.pipeline.preprocessor.features if f.name == "city")
    (_, cardinality, dim), *_ = embedded.pipeline.preprocessor.embedded_columns()
    assert weights["0.tables.0.weight"].shape == (cardinality, dim)
    # Every training city, past the one-hot default cap, and code 0 for unseen or missing.
    assert cardinality == len(city.categories) + 1
    assert len(city.categories) > MAX_CATEGORIES
    assert len(predictions) == 8
    assert all(p["label"] in ("yes", "no") for p in predictions)
    # Unseen and missing cities share the reserved code 0.
    same_x = [{"x": 0.3, "city": None}, {"x": 0.3, "city": "nowhere"}]
    encoded = predictor.pipeline.inputs(same_x)
    np.testing.assert_array_equal(encoded[0], encoded[1])
    # The same input in two rows of one batch may differ in the last bit (BLAS kernels).
    missing, unseen = predictor.predict(same_x)
    assert missing["label"] == unseen["label"]
    assert missing["probabilities"] == pytest.approx(unseen["probabilities"], rel=1e-6)
    in_memory = embedded.model(torch.from_numpy(embedded.pipeline.inputs(rows)))
    np.testing.assert_allclose(
        [p["probabilities"]["yes"] for p in predictions],
        torch.softmax(in_memory, dim=1)[:, 1].detach().numpy(),
        rtol=1e-5,
    )


def test_a_training_run_with_embeddings_resumes_from_its_checkpoint():
    table = pa.table(_cities(n=120))
    checkpoints: list[bytes] = []
    straight = train(_embedding_spec(3), table)
    with pytest.raises(TrainingCancelled):
        train(
            _embedding_spec(3),
            table,
            on_checkpoint=lambda c: checkpoints.append(checkpoint_to_bytes(c)),
            should_cancel=lambda: len(checkpoints) == 1,
            checkpoint_interval_seconds=0,
        )

    resumed = train(_embedding_spec(3), table, resume_from=checkpoints[-1])

    assert resumed.fit.history == straight.fit.history
    for name, tensor in straight.model.state_dict().items():
        assert torch.equal(tensor, resumed.model.state_dict()[name]), name


def test_a_model_folder_with_version_1_preprocess_state_still_predicts(classifier):
    files = dict(classifier.files())
    state = json.loads(files["preprocess.json"])
    inner = state["state"]
    inner["version"] = 1
    inner.pop("dropped_columns")
    for feature in inner["features"]:
        if feature["kind"] == "numeric":
            feature["mean"] = feature.pop("offset")
            for key in ("lower", "upper", "edges", "bin_encode", "indicator"):
                feature.pop(key)
        else:
            for key in ("encoding", "unseen", "fill", "indicator", "embedding_dim"):
                feature.pop(key)
    files["preprocess.json"] = json.dumps(state).encode()
    rows = _rows(mixed_classification(n=10, seed=3), "label")

    old = Predictor.from_files(files).predict(rows)

    assert old == Predictor.from_files(classifier.files()).predict(rows)


def test_a_single_logit_output_gives_sigmoid_probabilities(classifier):
    # binary_cross_entropy models may end in one output: the logit of the second class.
    pipeline = classifier.pipeline
    outputs = torch.tensor([[2.0], [-1.0]])
    predictions = pipeline.predictions(outputs, torch.zeros(2, *pipeline.input_shape))
    first, second = pipeline.classes()
    assert [p["label"] for p in predictions] == [second, first]
    p_second = predictions[0]["probabilities"][str(second)]
    assert p_second == pytest.approx(1 / (1 + np.exp(-2.0)))
    assert sum(predictions[1]["probabilities"].values()) == pytest.approx(1.0)


def test_many_rows_run_as_forward_passes_of_bounded_size(classifier, monkeypatch):
    predictor = Predictor.from_files(classifier.files())
    rows = _rows(mixed_classification(), "label")[:20]
    whole = predictor.predict(rows)
    sizes: list[int] = []
    network = predictor.network

    def recording(inputs: torch.Tensor) -> torch.Tensor:
        sizes.append(len(inputs))
        return network(inputs)

    predictor.network = recording
    monkeypatch.setattr(engine.inference, "FORWARD_ROWS", 7)

    chunked = predictor.predict(rows)

    assert sizes == [7, 7, 6]
    assert [p["label"] for p in chunked] == [p["label"] for p in whole]
    for c, w in zip(chunked, whole, strict=True):
        assert c["probabilities"] == pytest.approx(w["probabilities"], abs=1e-6)
