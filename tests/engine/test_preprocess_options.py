"""`data.preprocess`: each option does what a user would see, fitted on training rows only,
replayed from JSON, and refused by name where it cannot apply."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from engine.data.preprocess.checks import check_spec_against_schema
from engine.data.preprocess.cleaning import clean_training_rows
from engine.data.preprocess.encoding import CategoricalFeature, NumericFeature, Preprocessor
from engine.data.preprocess.fit import fit_preprocessor
from engine.errors import DataError, SpecMismatch
from engine.spec import Spec
from engine.training.preparation import dry_run
from tests.sample_data import mixed_classification


def _spec(
    preprocess: dict,
    task: str = "regression",
    target: str | None = "y",
    data: dict | None = None,
    **fields,
) -> Spec:
    document = {"task": task, "data": {"preprocess": preprocess, **(data or {})}, **fields}
    if target is not None:
        document["target"] = target
    return Spec.model_validate(document)


def _fit(columns: dict, preprocess: dict, **spec) -> Preprocessor:
    return fit_preprocessor(_spec(preprocess, **spec), pa.table(columns))


def _target(n: int) -> list[float]:
    return [float(i % 7) for i in range(n)]


def _feature(preprocessor: Preprocessor, name: str):
    return next(f for f in preprocessor.features if f.name == name)


def _mismatch(columns: dict, preprocess: dict, **spec) -> SpecMismatch:
    with pytest.raises(SpecMismatch) as info:
        check_spec_against_schema(_spec(preprocess, **spec), pa.table(columns).schema)
    return info.value


# --- missing values -----------------------------------------------------------------------------

GAPPY = [1.0, 2.0, 3.0, 10.0, None, 2.0]


@pytest.mark.parametrize(
    ("impute", "expected"),
    [("mean", 3.6), ("median", 2.0), ("most_frequent", 2.0)],
)
def test_numeric_missing_value_is_filled_by_the_chosen_statistic(impute, expected):
    preprocessor = _fit(
        {"n": GAPPY, "y": _target(6)}, {"numeric": {"impute": impute, "scale": "none"}}
    )

    encoded = preprocessor.transform(pa.table({"n": pa.array([None], pa.float64())}))

    assert _feature(preprocessor, "n").fill == pytest.approx(expected)
    assert encoded[0, 0] == pytest.approx(expected)


def test_constant_imputation_fills_the_given_number():
    preprocessor = _fit(
        {"n": GAPPY, "y": _target(6)},
        {"columns": {"n": {"impute": "constant", "fill_value": -1, "scale": "none"}}},
    )

    encoded = preprocessor.transform(pa.table({"n": pa.array([None, 5.0], pa.float64())}))

    assert encoded[:, 0].tolist() == [-1.0, 5.0]


def test_constant_imputation_of_a_category_makes_it_a_category_of_its_own():
    columns = {"c": ["a", "b", None, "a", None, "b"], "y": _target(6)}
    preprocessor = _fit(columns, {"categorical": {"impute": "constant", "fill_value": "unknown"}})
    feature = _feature(preprocessor, "c")

    encoded = preprocessor.transform(pa.table({"c": pa.array([None], pa.string())}))

    assert "unknown" in feature.categories
    assert encoded[0, feature.categories.index("unknown")] == 1.0


def test_most_frequent_imputation_of_a_category_picks_the_commonest():
    columns = {"c": ["a", "b", "b", None, "a", "b"], "y": _target(6)}
    preprocessor = _fit(columns, {"categorical": {"impute": "most_frequent"}})
    feature = _feature(preprocessor, "c")

    encoded = preprocessor.transform(pa.table({"c": pa.array([None], pa.string())}))

    assert feature.fill == "b"
    assert encoded[0, feature.categories.index("b")] == 1.0


def test_missing_indicator_adds_a_column_that_says_the_value_was_missing():
    columns = {"n": GAPPY, "c": ["a", None, "b", "a", "b", "a"], "y": _target(6)}
    preprocessor = _fit(columns, {"numeric": {"missing_indicator": True}, "categorical": {}})
    plain = _fit(columns, {})

    encoded = preprocessor.transform(pa.table(columns))

    assert preprocessor.input_dim == plain.input_dim + 1
    assert encoded[:, 1].tolist() == [0, 0, 0, 0, 1, 0]  # right after n's value


def test_missing_indicator_on_a_category():
    columns = {"c": ["a", None, "b", "a", "b", "a"], "y": _target(6)}
    preprocessor = _fit(columns, {"columns": {"c": {"missing_indicator": True}}})

    encoded = preprocessor.transform(pa.table(columns))

    assert encoded[:, -1].tolist() == [0, 1, 0, 0, 0, 0]


def test_impute_drop_removes_training_rows_and_predict_falls_back_to_the_median():
    columns = {"n": GAPPY, "m": [1.0, None, 2.0, 3.0, 4.0, 5.0], "y": _target(6)}
    spec = _spec({"columns": {"n": {"impute": "drop", "scale": "none"}}})

    kept, removed = clean_training_rows(spec, pa.table(columns))
    preprocessor = fit_preprocessor(spec, kept)
    encoded = preprocessor.transform(pa.table({"n": pa.array([None], pa.float64()), "m": [1.0]}))

    assert removed == {"missing": 1}
    assert kept.num_rows == 5 and None not in kept.column("n").to_pylist()
    assert None in kept.column("m").to_pylist()  # m says median: its gap stays
    assert encoded[0, 0] == pytest.approx(2.0)


# --- duplicates and outliers --------------------------------------------------------------------


def test_drop_duplicates_keeps_the_first_of_each_repeated_row():
    columns = {"a": [1.0, 1.0, 2.0, 1.0], "c": ["x", "x", "x", "y"], "y": [0.0, 0.0, 1.0, 0.0]}

    kept, removed = clean_training_rows(_spec({"drop_duplicates": True}), pa.table(columns))

    assert removed == {"duplicates": 1}
    assert kept.to_pydict() == {"a": [1.0, 2.0, 1.0], "c": ["x", "x", "y"], "y": [0.0, 1.0, 0.0]}


def test_nothing_is_removed_by_default():
    table = pa.table({"a": [1.0, 1.0, None, 1e9], "y": [0.0, 0.0, 1.0, 2.0]})

    kept, removed = clean_training_rows(_spec({}), table)

    assert kept.equals(table)
    assert removed == {}


def test_iqr_clip_bounds_come_from_the_training_rows_and_clip_held_out_values():
    values = [float(v) for v in range(1, 21)]
    preprocessor = _fit(
        {"n": values, "y": _target(20)},
        {"numeric": {"outliers": {"method": "iqr"}, "scale": "none"}},
    )
    q1, q3 = np.percentile(values, [25, 75])
    feature = _feature(preprocessor, "n")

    encoded = preprocessor.transform(pa.table({"n": [1e6, -1e6, 10.0]}))

    assert (feature.lower, feature.upper) == pytest.approx(
        (q1 - 1.5 * (q3 - q1), q3 + 1.5 * (q3 - q1))
    )
    assert encoded[:, 0].tolist() == pytest.approx([feature.upper, feature.lower, 10.0])


def test_zscore_clip_bounds_use_the_threshold():
    values = [float(v) for v in range(1, 21)]
    preprocessor = _fit(
        {"n": values, "y": _target(20)},
        {"numeric": {"outliers": {"method": "zscore", "threshold": 2}}},
    )
    feature = _feature(preprocessor, "n")

    mean, std = np.mean(values), np.std(values)
    assert (feature.lower, feature.upper) == pytest.approx((mean - 2 * std, mean + 2 * std))


def test_outlier_drop_removes_training_rows_and_reports_the_count():
    values = [float(v) for v in range(1, 21)] + [500.0, -400.0]
    columns = {"n": values, "y": _target(22)}
    spec = _spec({"columns": {"n": {"outliers": {"action": "drop"}}}})

    kept, removed = clean_training_rows(spec, pa.table(columns))

    assert removed == {"outliers": 2}
    assert kept.column("n").to_pylist() == values[:20]
    # At predict time there is no row to drop: the value is clipped.
    preprocessor = fit_preprocessor(spec, kept)
    feature = _feature(preprocessor, "n")
    assert preprocessor.transform(pa.table({"n": [500.0]}))[0, 0] == pytest.approx(
        (feature.upper - feature.offset) / feature.scale
    )


def test_cleaning_that_would_remove_every_row_raises_data_error():
    columns = {"n": pa.array([None, None], pa.float64()), "m": [1.0, 2.0], "y": [1.0, 2.0]}

    with pytest.raises(DataError, match="removed all 2 training rows"):
        clean_training_rows(_spec({"numeric": {"impute": "drop"}}), pa.table(columns))


# --- scaling ------------------------------------------------------------------------------------

VALUES = [2.0, 4.0, 6.0, 8.0, 100.0]


def _scaled(scale: str) -> list[float]:
    preprocessor = _fit({"n": VALUES, "y": _target(5)}, {"numeric": {"scale": scale}})
    return preprocessor.transform(pa.table({"n": VALUES}))[:, 0].tolist()


def test_minmax_scaling_maps_the_training_range_to_zero_one():
    assert _scaled("minmax") == pytest.approx([(v - 2.0) / 98.0 for v in VALUES])


def test_robust_scaling_centres_on_the_median_and_divides_by_the_iqr():
    # median 6, quartiles 4 and 8
    assert _scaled("robust") == pytest.approx([(v - 6.0) / 4.0 for v in VALUES])


def test_no_scaling_passes_values_through():
    assert _scaled("none") == pytest.approx(VALUES)


def test_per_column_settings_override_the_types_field_by_field():
    columns = {"a": GAPPY, "b": GAPPY, "y": _target(6)}
    preprocessor = _fit(
        columns, {"numeric": {"scale": "minmax"}, "columns": {"a": {"impute": "mean"}}}
    )
    a, b = _feature(preprocessor, "a"), _feature(preprocessor, "b")

    assert (a.offset, a.scale) == (b.offset, b.scale) == (1.0, 9.0)  # both minmax
    assert (a.fill, b.fill) == pytest.approx((3.6, 2.0))  # only a takes the mean


# --- categories ---------------------------------------------------------------------------------

COLOURS = {"c": ["red", "green", "red", "blue", "red", "green"], "y": _target(6)}


def test_onehot_unseen_category_is_all_zeros_by_default():
    preprocessor = _fit(COLOURS, {})

    encoded = preprocessor.transform(pa.table({"c": pa.array(["purple", None], pa.string())}))

    assert encoded.shape == (2, 3)
    assert not encoded.any()


def test_onehot_unseen_category_goes_to_the_other_slot():
    preprocessor = _fit(COLOURS, {"categorical": {"unseen": "other"}})

    encoded = preprocessor.transform(pa.table({"c": ["purple", "red"]}))

    assert encoded.tolist() == [[0, 0, 0, 1], [1, 0, 0, 0]]  # red is the most frequent


def test_categories_past_max_categories_share_the_other_slot():
    preprocessor = _fit(COLOURS, {"columns": {"c": {"unseen": "other", "max_categories": 2}}})

    encoded = preprocessor.transform(pa.table({"c": ["blue", "green"]}))

    assert _feature(preprocessor, "c").categories == ["red", "green"]
    assert encoded.tolist() == [[0, 0, 1], [0, 1, 0]]


def test_ordinal_codes_are_one_based_in_sorted_order_and_unseen_is_zero():
    preprocessor = _fit(COLOURS, {"categorical": {"encoding": "ordinal"}})

    encoded = preprocessor.transform(pa.table({"c": ["blue", "green", "red", "purple"]}))

    assert _feature(preprocessor, "c").categories == ["blue", "green", "red"]
    assert encoded[:, 0].tolist() == [1, 2, 3, 0]


def test_embedding_column_is_one_code_input_with_its_table_size_and_dim():
    columns = {"n": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], **COLOURS}
    preprocessor = _fit(columns, {"columns": {"c": {"encoding": "embedding"}}})

    encoded = preprocessor.transform(pa.table({"n": [1.0, 1.0], "c": ["red", "teal"]}))

    # 3 categories + the reserved code 0; default dim min(50, (3 + 1) // 2).
    assert preprocessor.embedded_columns() == [(1, 4, 2)]
    assert preprocessor.input_dim == 2
    assert encoded[:, 1].tolist() == [1, 0]


# --- binning ------------------------------------------------------------------------------------

RANGE = [float(v) for v in range(11)]  # 0..10


def _binned(binning: dict, values: list[float]) -> tuple[NumericFeature, np.ndarray]:
    preprocessor = _fit({"n": RANGE, "y": _target(11)}, {"numeric": {"binning": binning}})
    return _feature(preprocessor, "n"), preprocessor.transform(pa.table({"n": values}))


def test_equal_width_bins_split_the_training_range_evenly():
    feature, encoded = _binned({"method": "equal_width", "bins": 5, "encode": "ordinal"}, RANGE)

    assert feature.edges == pytest.approx([2.0, 4.0, 6.0, 8.0])
    assert encoded[:, 0].tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 4]


def test_quantile_bins_hold_equal_shares_of_the_training_rows():
    feature, encoded = _binned({"method": "quantile", "bins": 2, "encode": "ordinal"}, RANGE)

    assert feature.edges == pytest.approx([5.0])
    assert np.bincount(encoded[:, 0].astype(int)).tolist() == [5, 6]


def test_given_edges_bin_one_hot_and_out_of_range_values_go_to_the_end_bins():
    feature, encoded = _binned({"method": "edges", "edges": [3.0, 7.0]}, [-100.0, 5.0, 1e9])

    assert feature.width == 3
    assert encoded.tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 1]]


# --- feature selection --------------------------------------------------------------------------


def _informative(n: int = 400, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=n)
    return {
        "signal": signal.tolist(),
        "noise1": rng.normal(size=n).tolist(),
        "noise2": rng.normal(size=n).tolist(),
        "tag": rng.choice(["p", "q", "r"], size=n).tolist(),
        "label": np.where(signal > 0, "yes", "no").tolist(),
        "y": (3 * signal + rng.normal(scale=0.1, size=n)).tolist(),
    }


def test_constant_columns_are_dropped_by_default_and_kept_when_asked():
    columns = {"a": [1.0, 2.0, 3.0], "same": [5.0, 5.0, 5.0], "y": [1.0, 2.0, 3.0]}

    default = _fit(columns, {})
    kept = _fit(columns, {"selection": {"drop_constant": False}})

    assert default.feature_names == ["a"]
    assert default.dropped_columns == {"same": "constant"}
    assert kept.feature_names == ["a", "same"]


def test_variance_threshold_drops_numeric_columns_at_or_below_it():
    columns = {"wide": [0.0, 10.0, 20.0, 30.0], "narrow": [1.0, 1.1, 1.0, 1.1], "y": _target(4)}

    preprocessor = _fit(columns, {"selection": {"variance_threshold": 0.01}})

    assert preprocessor.feature_names == ["wide"]
    assert preprocessor.dropped_columns == {"narrow": "variance"}


@pytest.mark.parametrize(("task", "target"), [("classification", "label"), ("regression", "y")])
def test_top_k_keeps_the_columns_most_informative_about_the_target(task, target):
    columns = _informative()
    features = ["noise1", "signal", "tag", "noise2"]

    preprocessor = _fit(
        columns, {"selection": {"top_k": 1}}, task=task, target=target, features=features
    )

    assert preprocessor.feature_names == ["signal"]
    assert preprocessor.dropped_columns == {"noise1": "top_k", "tag": "top_k", "noise2": "top_k"}


def test_top_k_needs_a_target():
    error = _mismatch(
        {"a": [1.0, 2.0]}, {"selection": {"top_k": 1}}, task="reconstruction", target=None
    )

    assert error.field == "data.preprocess.selection.top_k"


# --- fields that do not apply -------------------------------------------------------------------

MIXED = {"n": [1.0, 2.0, 3.0], "c": ["a", "b", "a"], "y": [1.0, 2.0, 3.0]}


@pytest.mark.parametrize(
    ("preprocess", "field"),
    [
        ({"numeric": {"encoding": "onehot"}}, "data.preprocess.numeric.encoding"),
        ({"categorical": {"scale": "minmax"}}, "data.preprocess.categorical.scale"),
        ({"categorical": {"impute": "mean"}}, "data.preprocess.categorical.impute"),
        ({"columns": {"n": {"encoding": "ordinal"}}}, "data.preprocess.columns.n.encoding"),
        ({"columns": {"n": {"max_categories": 3}}}, "data.preprocess.columns.n.max_categories"),
        ({"columns": {"c": {"scale": "robust"}}}, "data.preprocess.columns.c.scale"),
        ({"columns": {"c": {"binning": {}}}}, "data.preprocess.columns.c.binning"),
        ({"columns": {"c": {"outliers": {}}}}, "data.preprocess.columns.c.outliers"),
        ({"columns": {"size": {"scale": "none"}}}, "data.preprocess.columns.size"),
        ({"columns": {"y": {"scale": "none"}}}, "data.preprocess.columns.y"),
        (
            {"columns": {"n": {"impute": "constant", "fill_value": "zero"}}},
            "data.preprocess.columns.n.fill_value",
        ),
        (
            {"columns": {"c": {"encoding": "ordinal", "unseen": "other"}}},
            "data.preprocess.columns.c.unseen",
        ),
        ({"columns": {"c": {"embedding_dim": 4}}}, "data.preprocess.columns.c.embedding_dim"),
        (
            {"numeric": {"binning": {"bins": 3}}, "columns": {"n": {"scale": "minmax"}}},
            "data.preprocess.columns.n.scale",
        ),
    ],
)
def test_a_field_that_does_not_apply_is_refused_by_name(preprocess, field):
    error = _mismatch(MIXED, preprocess)

    assert error.field == field
    assert error.reason


def test_a_mismatch_names_the_column_and_its_type():
    error = _mismatch(MIXED, {"columns": {"n": {"encoding": "ordinal"}}})

    assert "categorical" in error.reason and "'n' is numeric" in error.reason


def test_embedding_is_refused_for_reconstruction():
    error = _mismatch(
        {"c": ["a", "b"]},
        {"categorical": {"encoding": "embedding"}},
        task="reconstruction",
        target=None,
    )

    assert error.field == "data.preprocess.categorical.encoding"


def test_forecasting_refuses_table_preprocessing():
    columns = {"t": [1.0, 2.0, 3.0], "y": [1.0, 2.0, 3.0]}

    error = _mismatch(
        columns, {"numeric": {"scale": "minmax"}}, task="forecasting", data={"window": 2}
    )

    assert error.field == "data.preprocess"


def test_the_dry_run_refuses_a_field_that_does_not_apply():
    spec = _spec(
        {"columns": {"colour": {"scale": "minmax"}}}, task="classification", target="label"
    )

    with pytest.raises(SpecMismatch) as info:
        dry_run(spec, pa.table(mixed_classification(n=60)))

    assert info.value.field == "data.preprocess.columns.colour.scale"


# --- the fitted state ---------------------------------------------------------------------------


def _every_option() -> tuple[Spec, pa.Table]:
    columns = _informative(n=120)
    columns["gappy"] = [None if i % 9 == 0 else float(i) for i in range(120)]
    columns["binned"] = [float(i % 13) for i in range(120)]
    columns["city"] = [f"c{i % 30}" for i in range(120)]
    columns["const"] = [1.0] * 120
    spec = _spec(
        {
            "numeric": {"scale": "robust", "outliers": {"method": "zscore"}},
            "categorical": {"unseen": "other", "missing_indicator": True},
            "columns": {
                "gappy": {"impute": "mean", "missing_indicator": True},
                "binned": {"binning": {"method": "quantile", "bins": 4}},
                "city": {"encoding": "embedding", "embedding_dim": 3},
            },
        },
        task="classification",
        target="label",
        features=["signal", "noise1", "tag", "gappy", "binned", "city", "const"],
    )
    return spec, pa.table(columns)


def test_json_round_trip_of_every_option_gives_an_identical_transform():
    spec, table = _every_option()
    preprocessor = fit_preprocessor(spec, table)
    rows = table.slice(0, 20)

    state = json.loads(json.dumps(preprocessor.to_dict()))
    restored = Preprocessor.from_dict(state)

    assert state["version"] == 2
    assert state["dropped_columns"] == {"const": "constant"}
    assert restored == preprocessor
    assert restored.embedded_columns() == preprocessor.embedded_columns()
    np.testing.assert_array_equal(restored.transform(rows), preprocessor.transform(rows))


def test_version_1_state_still_loads_and_encodes_as_before():
    state = {
        "version": 1,
        "task": "classification",
        "features": [
            {
                "name": "n",
                "fill": 2.0,
                "mean": 1.0,
                "scale": 2.0,
                "kind": "numeric",
                "boolean": False,
            },
            {"name": "c", "categories": ["a", "b"], "kind": "categorical"},
        ],
        "target": {
            "name": "label",
            "kind": "classes",
            "classes": ["no", "yes"],
            "mean": 0.0,
            "scale": 1.0,
        },
    }

    preprocessor = Preprocessor.from_dict(state)
    encoded = preprocessor.transform(
        pa.table({"n": pa.array([5.0, None]), "c": pa.array(["b", "zzz"])})
    )

    assert isinstance(preprocessor.features[1], CategoricalFeature)
    assert encoded.tolist() == [[2.0, 0.0, 1.0], [0.5, 0.0, 0.0]]
    assert Preprocessor.from_dict(preprocessor.to_dict()) == preprocessor
