"""Forecasting windows: shapes and alignment, forward-fill, a time-ordered split, a scaler
fitted on the training period only, and the naive last-value forecast."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
from pydantic import ValidationError

from engine.data.windows import (
    WindowScaler,
    fit_window_scaler,
    make_windows,
    naive_forecast,
    time_ordered_split,
)
from engine.errors import DataError, InvalidInstances, SpecMismatch
from engine.spec.data import DataConfig


def _series(rows: int = 50) -> pa.Table:
    t = np.arange(rows, dtype=np.float64)
    return pa.table({"load": t * 10.0, "temp": t + 0.5, "hour": (t % 24).astype(np.int64)})


def test_windows_have_the_right_shapes_and_target_first():
    x, y = make_windows(_series(50), "load", ["temp", "hour"], window=7, horizon=3)

    assert x.shape == (50 - 7 - 3 + 1, 7, 3)
    assert y.shape == (41, 3)
    assert x.dtype == y.dtype == np.float32
    np.testing.assert_array_equal(x[0, :, 0], np.arange(7) * 10.0)
    np.testing.assert_array_equal(x[0, :, 1], np.arange(7) + 0.5)


def test_last_window_targets_are_the_values_after_it():
    table = _series(50)
    load = np.asarray(table.column("load").to_pylist())

    x, y = make_windows(table, "load", ["temp"], window=5, horizon=2)

    # The last window ends at row 47; its targets are rows 48 and 49.
    np.testing.assert_array_equal(x[-1, :, 0], load[43:48])
    np.testing.assert_array_equal(y[-1], load[48:50])
    np.testing.assert_array_equal(y[-1, 0], load[47 + 1])


def test_missing_values_are_forward_filled():
    table = pa.table({"v": [1.0, None, 3.0, float("nan"), 5.0, 6.0]})

    x, y = make_windows(table, "v", [], window=2, horizon=1)

    assert x[:, :, 0].tolist() == [[1, 1], [1, 3], [3, 3], [3, 5]]
    assert y[:, 0].tolist() == [3, 3, 5, 6]


@pytest.mark.parametrize(
    ("table", "features", "error", "message"),
    [
        (pa.table({"v": [None, None, 1.0, 2.0, 3.0]}), [], DataError, "first 2 value"),
        (pa.table({"v": [1.0, 2.0, 3.0]}), [], DataError, "at least 4"),
        (pa.table({"v": [1.0] * 5}), ["nope"], SpecMismatch, "features\\[0\\]"),
        (pa.table({"v": [1.0] * 5, "s": ["a"] * 5}), ["s"], SpecMismatch, "not numeric"),
    ],
)
def test_unusable_series_are_refused(table, features, error, message):
    with pytest.raises(error, match=message):
        make_windows(table, "v", features, window=3, horizon=1)


def test_time_ordered_split_keeps_every_training_window_before_validation():
    train, val, test = time_ordered_split(100, validation=0.2, test=0.1)

    assert len(train) + len(val) + len(test) == 100
    assert train.max() < val.min() and val.max() < test.min()
    assert len(val) == 20 and len(test) == 10
    np.testing.assert_array_equal(np.concatenate([train, val, test]), np.arange(100))


def test_with_a_longer_horizon_no_target_step_is_in_two_splits():
    horizon = 4
    train, val, _ = time_ordered_split(100, validation=0.2, test=0.0, horizon=horizon)

    train_targets = set((train[:, None] + np.arange(horizon)).ravel().tolist())
    val_targets = set((val[:, None] + np.arange(horizon)).ravel().tolist())
    assert not train_targets & val_targets
    assert train.max() < val.min()


def test_split_refuses_a_series_too_short_for_validation():
    with pytest.raises(DataError, match="no validation window"):
        time_ordered_split(4, validation=0.2, test=0.0, horizon=3)


def test_scaler_statistics_come_from_the_training_period_only():
    values = np.concatenate([np.full(40, 1.0), np.full(20, 100.0)])  # a late level shift
    table = pa.table({"v": values + np.tile([0.0, 2.0], 30)})
    x, _ = make_windows(table, "v", [], window=5, horizon=1)
    train, _, _ = time_ordered_split(len(x), validation=0.3, test=0.0)

    scaler = fit_window_scaler(x, train, ["v"])

    covered = np.asarray(table.column("v").to_pylist())[: train.max() + 5]
    assert scaler.mean[0] == pytest.approx(covered.mean())
    assert scaler.std[0] == pytest.approx(covered.std())
    assert scaler.mean[0] < 10


def test_scaler_round_trips_through_json_and_decodes_targets():
    x, y = make_windows(_series(40), "load", ["temp"], window=4, horizon=2)
    scaler = fit_window_scaler(x, np.arange(25), ["load", "temp"], horizon=2, y=y)

    again = WindowScaler.from_dict(json.loads(json.dumps(scaler.to_dict())))

    np.testing.assert_array_equal(again.transform(x), scaler.transform(x))
    decoded = again.decode_target(again.encode_target(y, x), again.transform(x))
    np.testing.assert_allclose(decoded, y, rtol=1e-5)
    assert again.input_shape == [4, 2]


def test_target_is_the_change_from_the_last_value_so_zero_is_the_naive_forecast():
    x, y = make_windows(_series(40), "load", ["temp"], window=4, horizon=1)
    scaler = fit_window_scaler(x, np.arange(25), ["load", "temp"], y=y)

    zero_change = np.zeros((len(x), 1))
    decoded = scaler.decode_target(zero_change, scaler.transform(x))

    np.testing.assert_allclose(decoded, naive_forecast(x), rtol=1e-5)


def test_scaler_decodes_predict_instances_of_one_window():
    x, _ = make_windows(_series(20), "load", ["temp"], window=3, horizon=1)
    scaler = fit_window_scaler(x, np.arange(10), ["load", "temp"])

    assert scaler.instances_to_array([x[0].tolist()]).shape == (1, 3, 2)
    with pytest.raises(InvalidInstances, match="instances\\[1\\]"):
        scaler.instances_to_array([x[0].tolist(), x[0, :2].tolist()])


def test_naive_forecast_repeats_the_last_target_value():
    x, y = make_windows(_series(30), "load", ["temp"], window=4, horizon=3)

    forecast = naive_forecast(x, target_channel=0, horizon=3)

    assert forecast.shape == y.shape
    np.testing.assert_array_equal(forecast[:, 0], x[:, -1, 0])
    np.testing.assert_array_equal(forecast[:, 2], x[:, -1, 0])


def test_data_config_takes_window_and_horizon_with_defaults_for_tables():
    assert DataConfig.model_validate({}).window is None
    assert DataConfig.model_validate({}).horizon == 1
    assert DataConfig.model_validate({"window": 24, "horizon": 6}).window == 24
    with pytest.raises(ValidationError, match="window"):
        DataConfig.model_validate({"window": 1})
    with pytest.raises(ValidationError, match="horizon"):
        DataConfig.model_validate({"horizon": 0})
