"""The spec schema: the minimal spec is complete, and each mistake is named."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from engine.models import default_model_config
from engine.spec import Spec


def _error_locations(exc: ValidationError) -> list[tuple]:
    return [tuple(error["loc"]) for error in exc.errors()]


def test_minimal_spec_validates_with_sound_defaults():
    spec = Spec.model_validate({"task": "classification", "target": "label"})

    assert spec.features is None
    assert spec.training.optimizer == "adam"
    assert spec.training.epochs >= 1
    assert spec.training.learning_rate > 0
    assert spec.training.early_stopping is not None
    assert spec.training.early_stopping.patience >= 1
    assert 0 < spec.data.split.validation < 1
    # The model is chosen from the data when the job runs (see the next test).
    assert spec.model is None


@pytest.mark.parametrize(
    ("task", "input_shape", "family"),
    [
        ("classification", (30,), "mlp"),
        ("classification", (1, 8, 8), "cnn"),
        ("classification", (100, 1), "rnn"),
        ("reconstruction", (12,), "autoencoder"),
    ],
)
def test_default_model_follows_the_task_and_the_input(task, input_shape, family):
    assert default_model_config(task, input_shape).family == family


def test_unknown_optimizer_error_lists_allowed_ones():
    with pytest.raises(ValidationError) as info:
        Spec.model_validate(
            {"task": "regression", "target": "y", "training": {"optimizer": "lbfgs"}}
        )

    assert ("training", "optimizer") in _error_locations(info.value)
    message = str(info.value)
    for name in ("sgd", "adam", "adamw", "rmsprop", "adagrad"):
        assert name in message


@pytest.mark.parametrize(
    "document, location",
    [
        ({"task": "regression", "target": "y", "epochs": 5}, ("epochs",)),
        (
            {"task": "regression", "target": "y", "training": {"learning_rte": 0.1}},
            ("training", "learning_rte"),
        ),
        (
            {"task": "regression", "target": "y", "model": {"hiden": [8]}},
            ("model", "hiden"),
        ),
    ],
)
def test_unknown_field_is_rejected_at_its_path(document, location):
    with pytest.raises(ValidationError) as info:
        Spec.model_validate(document)

    assert location in _error_locations(info.value)
    assert any(error["type"] == "extra_forbidden" for error in info.value.errors())


@pytest.mark.parametrize(
    "training",
    [
        {"optimizer": "adam", "momentum": 0.9, "nesterov": True},
        {"optimizer": "sgd", "nesterov": True},
    ],
)
def test_nesterov_without_sgd_and_momentum_is_rejected(training):
    with pytest.raises(ValidationError, match="nesterov"):
        Spec.model_validate({"task": "regression", "target": "y", "training": training})


def test_nesterov_with_sgd_and_momentum_is_accepted():
    spec = Spec.model_validate(
        {
            "task": "regression",
            "target": "y",
            "training": {"optimizer": "sgd", "momentum": 0.9, "nesterov": True},
        }
    )

    assert spec.training.nesterov


def test_target_listed_in_features_is_rejected():
    with pytest.raises(ValidationError, match="cannot also be a feature"):
        Spec.model_validate({"task": "regression", "target": "y", "features": ["a", "y"]})


def test_empty_or_repeated_features_are_rejected():
    with pytest.raises(ValidationError):
        Spec.model_validate({"task": "regression", "target": "y", "features": []})
    with pytest.raises(ValidationError, match="twice"):
        Spec.model_validate({"task": "regression", "target": "y", "features": ["a", "a"]})


@pytest.mark.parametrize("batch_size", [1, 64, "full"])
def test_batch_size_accepts_positive_int_and_full(batch_size):
    spec = Spec.model_validate(
        {"task": "regression", "target": "y", "training": {"batch_size": batch_size}}
    )

    assert spec.training.batch_size == batch_size


@pytest.mark.parametrize("batch_size", [0, -4, "all"])
def test_batch_size_rejects_zero_negative_and_other_words(batch_size):
    with pytest.raises(ValidationError) as info:
        Spec.model_validate(
            {"task": "regression", "target": "y", "training": {"batch_size": batch_size}}
        )

    assert all(loc[:2] == ("training", "batch_size") for loc in _error_locations(info.value))


def test_split_must_leave_rows_for_training():
    with pytest.raises(ValidationError, match="training"):
        Spec.model_validate(
            {
                "task": "regression",
                "target": "y",
                "data": {"split": {"validation": 0.5, "test": 0.45}},
            }
        )


def test_spec_json_round_trip_is_identical():
    spec = Spec.model_validate(
        {
            "task": "classification",
            "target": "label",
            "features": ["a", "b"],
            "training": {"batch_size": "full", "early_stopping": None},
        }
    )

    assert Spec.model_validate_json(spec.model_dump_json()) == spec


def test_reconstruction_with_a_target_is_refused_naming_the_target():
    with pytest.raises(ValidationError) as info:
        Spec.model_validate({"task": "reconstruction", "target": "label"})
    error = info.value.errors()[0]
    assert error["loc"] == ("target",)
    assert "features" in error["msg"]
