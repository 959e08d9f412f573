"""The search space of a study: its schema, the trial specs it makes, and the check of every
corner against the spec rules before anything is queued."""

from __future__ import annotations

import optuna
import pytest
from pydantic import ValidationError

from engine.errors import SpecMismatch
from engine.search.sampling import suggest_values
from engine.search.space import SearchSpace, check_space_points, corner_points, spec_for_trial
from engine.spec import Spec

BASE = {"task": "classification", "target": "label", "training": {"epochs": 3}}


def space(document: dict) -> SearchSpace:
    return SearchSpace.model_validate(document)


def test_a_trial_spec_is_the_base_with_each_value_at_its_path() -> None:
    spec = spec_for_trial(
        BASE,
        {"training.learning_rate": 0.01, "model.family": "mlp", "model.dropout": 0.2},
    )
    assert spec["training"] == {"epochs": 3, "learning_rate": 0.01}
    assert spec["model"] == {"family": "mlp", "dropout": 0.2}
    assert "model" not in BASE  # the base is left as it was
    Spec.model_validate(spec)


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ({"training.learning_rate": {"type": "float", "low": 1.0, "high": 0.1}}, "above high"),
        (
            {"training.learning_rate": {"type": "float", "low": 0, "high": 1, "log": True}},
            "low > 0",
        ),
        ({"learning_rate": {"type": "float", "low": 0.1, "high": 1}}, "not a spec path"),
        ({"model.dropout": {"type": "categorical", "choices": []}}, "at least 1"),
        ({"model.dropout": {"type": "uniform", "low": 0, "high": 1}}, "type"),
        (
            {
                "model.filters": {
                    "type": "int",
                    "low": 8,
                    "high": 64,
                    "when": {"model.family": "cnn"},
                },
                "model.family": {"type": "categorical", "choices": ["mlp", "cnn"]},
            },
            "listed before it",
        ),
        (
            {
                "model.family": {"type": "categorical", "choices": ["mlp", "cnn"]},
                "model.dropout": {
                    "type": "float",
                    "low": 0,
                    "high": 0.5,
                    "when": {"model.family": "rnn"},
                },
            },
            "not one of its choices",
        ),
        (
            {
                "model": {"type": "categorical", "choices": [{"family": "mlp"}]},
                "model.dropout": {"type": "float", "low": 0, "high": 0.5},
            },
            "overlap",
        ),
        ({}, "names no parameter"),
    ],
)
def test_a_malformed_space_is_refused_with_its_reason(document: dict, reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        space(document)


def test_corners_cover_each_end_and_choice_with_conditions_enabled() -> None:
    searched = space(
        {
            "training.learning_rate": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
            "model.family": {"type": "categorical", "choices": ["mlp", "cnn"]},
            "model.filters": {
                "type": "categorical",
                "choices": [[8, 16], [16, 32]],
                "when": {"model.family": "cnn"},
            },
            "training.batch_size": {"type": "int", "low": 16, "high": 100, "step": 16},
        }
    )
    points = corner_points(searched)
    checked = {(path, repr(point[path])) for path, point in points}
    assert ("training.learning_rate", "0.1") in checked
    assert ("model.family", "'cnn'") in checked
    assert ("model.filters", "[16, 32]") in checked
    # The stepped range's top is the last value on its grid, not `high`.
    assert ("training.batch_size", "96") in checked
    for path, point in points:
        # A conditional parameter appears only where its condition holds.
        assert ("model.filters" in point) == (point["model.family"] == "cnn"), (path, point)


def test_a_corner_that_breaks_the_spec_rules_is_named_by_its_path() -> None:
    searched = space(
        {
            "training.learning_rate": {"type": "float", "low": 1e-3, "high": 1e-2},
            "model.dropout": {"type": "float", "low": 0.0, "high": 1.5},
        }
    )
    with pytest.raises(SpecMismatch) as caught:
        check_space_points({**BASE, "model": {"family": "mlp"}}, searched)
    assert caught.value.field == "search_space.model.dropout"
    assert "1.5" in caught.value.reason and "model" in caught.value.reason


def test_a_sound_space_gives_one_valid_spec_per_corner() -> None:
    searched = space(
        {
            "model.family": {"type": "categorical", "choices": ["mlp", "cnn"]},
            "training.optimizer": {"type": "categorical", "choices": ["adam", "sgd"]},
        }
    )
    specs = check_space_points(BASE, searched)
    assert {s["model"]["family"] for s in specs} == {"mlp", "cnn"}
    assert {s["training"]["optimizer"] for s in specs} == {"adam", "sgd"}


def test_optuna_samples_within_the_space_and_honours_conditions() -> None:
    searched = space(
        {
            "model.family": {"type": "categorical", "choices": ["mlp", "cnn"]},
            "model.hidden": {
                "type": "categorical",
                "choices": [[32], [64, 32]],
                "when": {"model.family": "mlp"},
            },
            "training.learning_rate": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
            "training.batch_size": {"type": "int", "low": 8, "high": 64, "step": 8},
        }
    )
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen_families = set()
    for _ in range(30):
        trial = study.ask()
        values = suggest_values(trial, searched)
        seen_families.add(values["model.family"])
        assert 1e-4 <= values["training.learning_rate"] <= 1e-1
        assert values["training.batch_size"] % 8 == 0
        assert ("model.hidden" in values) == (values["model.family"] == "mlp")
        if "model.hidden" in values:
            assert values["model.hidden"] in ([32], [64, 32])  # decoded back from its JSON
        study.tell(trial, 0.0)
    assert seen_families == {"mlp", "cnn"}
