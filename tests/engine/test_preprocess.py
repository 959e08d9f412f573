"""Preprocessing: fitted on the training rows only, replayed identically from its JSON."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from engine.data.preprocess.checks import check_spec_against_schema
from engine.data.preprocess.cleaning import drop_missing_target
from engine.data.preprocess.columns import resolve_features
from engine.data.preprocess.encoding import CategoricalFeature, NumericFeature, Preprocessor
from engine.data.preprocess.fit import MAX_CATEGORIES, fit_preprocessor
from engine.errors import DataError, SpecMismatch
from engine.spec import Spec
from tests.sample_data import linear_regression, mixed_classification


def _classification(**fields) -> Spec:
    return Spec.model_validate({"task": "classification", "target": "label", **fields})


def _regression(**fields) -> Spec:
    return Spec.model_validate({"task": "regression", "target": "y", **fields})


def _feature(preprocessor: Preprocessor, name: str):
    return next(f for f in preprocessor.features if f.name == name)


def test_statistics_come_from_the_training_rows_not_the_whole_table():
    full = pa.table(linear_regression(n=200))
    train = full.slice(0, 50)

    preprocessor = fit_preprocessor(_regression(), train)

    a_train = np.asarray(train.column("a").to_pylist())
    a_full = np.asarray(full.column("a").to_pylist())
    feature = _feature(preprocessor, "a")
    assert feature.offset == pytest.approx(a_train.mean())
    assert feature.offset != pytest.approx(a_full.mean())
    assert feature.scale == pytest.approx(a_train.std())
    assert preprocessor.target.mean == pytest.approx(np.mean(train.column("y").to_pylist()))


def test_training_features_come_out_standardised():
    train = pa.table(linear_regression(n=120))

    x = fit_preprocessor(_regression(), train).transform(train)

    assert x.shape == (120, 2)
    assert x.dtype == np.float32
    np.testing.assert_allclose(x.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(x.std(axis=0), 1.0, atol=1e-4)


def test_missing_numeric_value_is_filled_with_the_training_median():
    values = [1.0, 2.0, 3.0, 10.0, 100.0, None]
    train = pa.table({"n": values, "y": [float(i) for i in range(6)]})
    preprocessor = fit_preprocessor(_regression(), train)
    median = float(np.median([v for v in values if v is not None]))

    encoded = preprocessor.transform(pa.table({"n": pa.array([None, median], pa.float64())}))

    assert _feature(preprocessor, "n").fill == pytest.approx(median)
    assert encoded[0, 0] == pytest.approx(encoded[1, 0])


def test_known_category_encodes_as_one_hot():
    train = pa.table(mixed_classification(n=60))
    preprocessor = fit_preprocessor(_classification(features=["colour"]), train)
    categories = _feature(preprocessor, "colour").categories

    encoded = preprocessor.transform(pa.table({"colour": categories}))

    assert sorted(categories) == ["blue", "green", "red"]
    np.testing.assert_array_equal(encoded, np.eye(len(categories), dtype=np.float32))


def test_unseen_and_null_categories_encode_as_all_zeros():
    train = pa.table(mixed_classification(n=60))
    preprocessor = fit_preprocessor(_classification(features=["colour"]), train)

    encoded = preprocessor.transform(pa.table({"colour": pa.array(["purple", None], pa.string())}))

    assert encoded.shape == (2, 3)
    assert not encoded.any()


def test_categories_are_capped_keeping_the_most_frequent():
    common = ["common"] * 5
    rare = [f"rare{i:03d}" for i in range(MAX_CATEGORIES + 20)]
    train = pa.table({"c": common + rare, "y": [float(i) for i in range(len(common) + len(rare))]})

    feature = _feature(fit_preprocessor(_regression(), train), "c")

    assert len(feature.categories) == MAX_CATEGORIES
    assert feature.categories[0] == "common"


def test_json_round_trip_gives_an_identical_transform():
    train = pa.table(mixed_classification(n=80))
    preprocessor = fit_preprocessor(_classification(), train)

    restored = Preprocessor.from_dict(json.loads(json.dumps(preprocessor.to_dict())))

    assert restored == preprocessor
    assert restored.input_dim == preprocessor.input_dim
    np.testing.assert_array_equal(restored.transform(train), preprocessor.transform(train))
    np.testing.assert_array_equal(
        restored.encode_target(train.column("label")),
        preprocessor.encode_target(train.column("label")),
    )
    assert isinstance(_feature(restored, "colour"), CategoricalFeature)
    assert isinstance(_feature(restored, "x1"), NumericFeature)


def test_classification_target_lists_training_classes_and_encodes_unseen_as_minus_one():
    train = pa.table(mixed_classification(n=80))
    preprocessor = fit_preprocessor(_classification(), train)
    classes = preprocessor.target.classes

    codes = preprocessor.encode_target(pa.array([classes[1], "maybe", classes[0], None]))

    assert sorted(classes) == sorted(set(train.column("label").to_pylist()))
    assert preprocessor.output_dim == len(classes)
    assert codes.tolist() == [1, -1, 0, -1]


def test_integer_class_labels_are_accepted_for_classification():
    train = pa.table({"x": [0.1, 0.2, 0.3, 0.4], "label": [2, 0, 2, 0]})

    preprocessor = fit_preprocessor(_classification(), train)

    assert preprocessor.target.classes == [0, 2]
    assert preprocessor.encode_target(train.column("label")).tolist() == [1, 0, 1, 0]


def test_single_class_target_raises_data_error():
    train = pa.table({"x": [0.1, 0.2, 0.3], "label": ["a", "a", "a"]})

    with pytest.raises(DataError, match="fewer than 2 classes"):
        fit_preprocessor(_classification(), train)


def test_regression_target_is_standardised_and_decode_inverts_it():
    train = pa.table(linear_regression(n=100))
    preprocessor = fit_preprocessor(_regression(), train)
    y = np.asarray(train.column("y").to_pylist())

    encoded = preprocessor.encode_target(train.column("y"))

    assert preprocessor.output_dim == 1
    assert encoded.mean() == pytest.approx(0.0, abs=1e-5)
    assert encoded.std() == pytest.approx(1.0, abs=1e-4)
    np.testing.assert_allclose(preprocessor.decode_regression(encoded), y, rtol=1e-5)


def test_feature_that_is_entirely_empty_raises_data_error():
    train = pa.table({"c": pa.array([None, None, None], pa.string()), "y": [1.0, 2.0, 3.0]})

    with pytest.raises(DataError, match="no usable feature"):
        fit_preprocessor(_regression(), train)


def test_features_default_to_every_column_but_the_target():
    schema = pa.table(mixed_classification(n=10)).schema

    assert resolve_features(_classification(), schema) == ["x1", "x2", "colour"]
    assert resolve_features(_classification(features=["colour", "x1"]), schema) == [
        "colour",
        "x1",
    ]


# One rule, four ways to break it: the error names the spec field at fault and says why.
@pytest.mark.parametrize(
    ("check", "spec", "columns", "field", "in_reason"),
    [
        pytest.param(
            check_spec_against_schema,
            _classification(target="outcome"),
            mixed_classification(n=10),
            "target",
            "outcome",
            id="missing target column",
        ),
        pytest.param(
            resolve_features,
            _classification(features=["x1", "colour", "size"]),
            mixed_classification(n=10),
            "features[2]",
            "size",
            id="missing feature column, named by its index",
        ),
        pytest.param(
            check_spec_against_schema,
            _classification(target="y"),
            linear_regression(n=10),
            "task",
            "regression",
            id="classification on a real-valued target",
        ),
        pytest.param(
            check_spec_against_schema,
            _regression(target="label"),
            mixed_classification(n=10),
            "task",
            "numeric",
            id="regression on a text target",
        ),
    ],
)
def test_a_spec_the_table_does_not_fit_raises_spec_mismatch_on_the_field_at_fault(
    check, spec: Spec, columns: dict[str, list], field: str, in_reason: str
):
    with pytest.raises(SpecMismatch) as info:
        check(spec, pa.table(columns).schema)

    assert info.value.field == field
    assert in_reason in info.value.reason


def test_rows_without_a_target_are_dropped():
    table = pa.table({"x": [1.0, 2.0, 3.0], "y": [1.0, None, 3.0]})

    kept = drop_missing_target(table, "y")

    assert kept.column("x").to_pylist() == [1.0, 3.0]
