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


def baseline_params(space: SearchSpace, spec: dict[str, Any]) -> dict[str, Any] | None:
    """Optuna's params for the trial that reproduces `spec` (the study's base, its defaults
    filled in): {path: value as suggest_values samples it}; None when the spec holds a value
    the space cannot take (outside a range, not among the choices, or unset)."""
    values: dict[str, Any] = {}
    params: dict[str, Any] = {}
    for path, parameter in space.root.items():
        if not space.active(path, values):
            continue
        value: Any = spec
        for key in path.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        if value is None:
            return None
        if isinstance(parameter, CategoricalParameter):
            if value not in parameter.choices:
                return None
            scalar = all(isinstance(choice, SCALARS) for choice in parameter.choices)
            params[path] = value if scalar else json.dumps(value, sort_keys=True)
        else:
            if isinstance(value, bool) or not isinstance(value, int | float):
                return None
            if not parameter.low <= value <= parameter.high:
                return None
            if parameter.step is not None and (value - parameter.low) % parameter.step:
                return None
            params[path] = value
        values[path] = value
    return params


def grid_of(space: SearchSpace) -> dict[str, list[Any]]:
    """Every value of every parameter, for Optuna's grid sampler: choices and stepped ranges
    only (a continuous range has no grid), as suggest_values samples them."""
    grid: dict[str, list[Any]] = {}
    for path, parameter in space.root.items():
        if isinstance(parameter, CategoricalParameter):
            choices = parameter.choices
            scalar = all(isinstance(choice, SCALARS) for choice in choices)
            grid[path] = choices if scalar else [json.dumps(c, sort_keys=True) for c in choices]
        elif parameter.step is None or parameter.log:
            raise ValueError(f"{path}: a grid search needs choices or a stepped range")
        else:
            count = int((parameter.high - parameter.low) // parameter.step) + 1
            grid[path] = [parameter.low + i * parameter.step for i in range(count)]
    return grid


def grid_size(grid: dict[str, list[Any]]) -> int:
    size = 1
    for values in grid.values():
        size *= len(values)
    return size
