"""A trial's values, sampled by Optuna's define-by-run API from a search space.

Optuna's categorical distributions hold scalars only; a space whose choices are lists or
objects (`model.hidden: [[64], [128, 64]]`) is sampled over their JSON text, so the study's
records and importances still show each choice as written.
"""

from __future__ import annotations

import json
from typing import Any

import optuna

from engine.search.space import CategoricalParameter, FloatParameter, SearchSpace

SCALARS = (str, int, float, bool, type(None))


def suggest_values(trial: optuna.Trial, space: SearchSpace) -> dict[str, Any]:
    """{path: value} for the parameters active under the values sampled before them."""
    values: dict[str, Any] = {}
    for path, parameter in space.root.items():
        if not space.active(path, values):
            continue
        if isinstance(parameter, CategoricalParameter):
            values[path] = _suggest_choice(trial, path, parameter.choices)
        elif isinstance(parameter, FloatParameter):
            values[path] = trial.suggest_float(
                path, parameter.low, parameter.high, log=parameter.log, step=parameter.step
            )
        else:
            values[path] = trial.suggest_int(
                path, parameter.low, parameter.high, log=parameter.log, step=parameter.step
            )
    return values


def _suggest_choice(trial: optuna.Trial, path: str, choices: list[Any]) -> Any:
    if all(isinstance(choice, SCALARS) for choice in choices):
        return trial.suggest_categorical(path, choices)
    encoded = [json.dumps(choice, sort_keys=True) for choice in choices]
    return json.loads(trial.suggest_categorical(path, encoded))
