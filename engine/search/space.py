"""A study's search space: which spec paths vary, over what, and under which conditions.

A space maps spec paths (`training.learning_rate`, `model.family`, `model.dropout`) to a
parameter: a float or int range (optionally log-scaled or stepped) or a list of categorical
choices. A parameter with `when` is sampled only while earlier parameters hold the given
values (`model.filters` only when `model.family` is `cnn`), which is how conditional choices
read in Optuna's define-by-run API, used to sample them (`engine.search.sampling`).

A trial's spec is the base spec with the sampled values written at their paths
(`spec_for_trial`). Before a study is queued every parameter is checked at its corners (each
end of a range, each choice) against the spec rules, so a point that could never train is a
422 naming its path, not a failed trial an hour in (`corner_points`).
"""

from __future__ import annotations

import copy
import re
from typing import Annotated, Any, Literal

from pydantic import Field, RootModel, Tag, ValidationError, model_validator

from engine.errors import SpecMismatch
from engine.spec import Spec
from engine.spec.base import SpecModel, tagged_union

# A path names a spec field by its keys: `training.learning_rate`, `data.split.validation`.
PATH_PATTERN = re.compile(r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)*$")
MAX_PARAMETERS = 32
MAX_CHOICES = 64
# The spec's own sections: a path must start with one of them.
SECTIONS = ("model", "training", "data", "features", "seed")

Choice = str | int | float | bool | None | list[Any] | dict[str, Any]


class Conditional(SpecModel):
    when: dict[str, Choice] | None = Field(
        default=None,
        description="Sample this parameter only while each named (earlier, categorical) "
        'parameter holds the given value, e.g. {"model.family": "cnn"}.',
    )


class FloatParameter(Conditional):
    type: Literal["float"]
    low: float
    high: float
    log: bool = False
    step: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _a_range(self) -> FloatParameter:
        _check_range(self.low, self.high, self.log)
        if self.log and self.step is not None:
            raise ValueError("a log-scaled range cannot have a step")
        return self


class IntParameter(Conditional):
    type: Literal["int"]
    low: int
    high: int
    log: bool = False
    step: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _a_range(self) -> IntParameter:
        _check_range(self.low, self.high, self.log)
        if self.log and self.step != 1:
            raise ValueError("a log-scaled range cannot have a step")
        return self


class CategoricalParameter(Conditional):
    type: Literal["categorical"]
    choices: list[Choice] = Field(min_length=1, max_length=MAX_CHOICES)


PARAMETER_TYPES = ("float", "int", "categorical")
_discriminator, _relocator = tagged_union("type", list(PARAMETER_TYPES), lambda _: None)
# Errors read `search_space.training.learning_rate`, not `...learning_rate.float`.
Parameter = Annotated[
    Annotated[FloatParameter, Tag("float")]
    | Annotated[IntParameter, Tag("int")]
    | Annotated[CategoricalParameter, Tag("categorical")],
    _discriminator,
    _relocator,
]


class SearchSpace(RootModel[dict[str, Parameter]]):
    """{spec path: parameter}, in the order the parameters are sampled."""

    @model_validator(mode="after")
    def _paths_and_conditions(self) -> SearchSpace:
        space = self.root
        if not space:
            raise ValueError("the search space names no parameter")
        if len(space) > MAX_PARAMETERS:
            raise ValueError(f"at most {MAX_PARAMETERS} parameters, not {len(space)}")
        seen: dict[str, Parameter] = {}
        for path, parameter in space.items():
            if not PATH_PATTERN.match(path) or path.split(".")[0] not in SECTIONS:
                raise ValueError(
                    f"{path!r} is not a spec path: dotted field names under one of "
                    f"{', '.join(SECTIONS)}, e.g. 'training.learning_rate'"
                )
            for other in seen:
                if path.startswith(other + ".") or other.startswith(path + "."):
                    raise ValueError(f"{path!r} and {other!r} overlap: one lies inside the other")
            for parent, value in (parameter.when or {}).items():
                earlier = seen.get(parent)
                if not isinstance(earlier, CategoricalParameter):
                    raise ValueError(
                        f"{path!r}: its condition names {parent!r}, which must be a categorical "
                        "parameter listed before it"
                    )
                if value not in earlier.choices:
                    raise ValueError(
                        f"{path!r}: its condition asks {parent!r} for {value!r}, which is not "
                        f"one of its choices {earlier.choices}"
                    )
            seen[path] = parameter
        return self

    def active(self, path: str, values: dict[str, Any]) -> bool:
        """Whether `path` is sampled, given the values sampled before it."""
        when = self.root[path].when or {}
        return all(parent in values and values[parent] == want for parent, want in when.items())


def spec_for_trial(base: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """The base spec (a JSON document) with each value written at its path."""
    spec = copy.deepcopy(base)
    for path, value in values.items():
        *parents, leaf = path.split(".")
        node = spec
        for key in parents:
            child = node.get(key)
            if not isinstance(child, dict):
                child = {}
                node[key] = child
            node = child
        node[leaf] = copy.deepcopy(value)
    return spec


def corner_points(space: SearchSpace) -> list[tuple[str, dict[str, Any]]]:
    """(the parameter being checked, a full point of the space) for each end of each range
    and each choice, the other parameters at their first value; conditional parameters are
    checked under a parent value that makes them active."""
    first = {path: _ends(parameter)[0] for path, parameter in space.root.items()}
    points: list[tuple[str, dict[str, Any]]] = []
    for path, parameter in space.root.items():
        for value in _ends(parameter):
            wanted = {**first, **_enabling(space, path), path: value}
            point: dict[str, Any] = {}
            for other in space.root:
                if space.active(other, point):
                    point[other] = wanted[other]
            if path in point:
                points.append((path, point))
    return points


def _enabling(space: SearchSpace, path: str) -> dict[str, Any]:
    """Parent values under which `path` is active (parents' own parents included)."""
    values: dict[str, Any] = {}
    for parent, value in (space.root[path].when or {}).items():
        values.update(_enabling(space, parent))
        values[parent] = value
    return values


def _ends(parameter: Parameter) -> list[Any]:
    if isinstance(parameter, CategoricalParameter):
        return list(parameter.choices)
    if isinstance(parameter, IntParameter):
        high = parameter.low + (parameter.high - parameter.low) // parameter.step * parameter.step
        return [parameter.low, high] if high != parameter.low else [parameter.low]
    return [parameter.low, parameter.high] if parameter.high != parameter.low else [parameter.low]


def _check_range(low: float, high: float, log: bool) -> None:
    if low > high:
        raise ValueError(f"low ({low}) is above high ({high})")
    if log and low <= 0:
        raise ValueError(f"a log-scaled range needs low > 0, not {low}")


def check_space_points(base: dict[str, Any], space: SearchSpace) -> list[dict[str, Any]]:
    """Every corner point's spec, validated by the spec rules; the first point that breaks
    them is a SpecMismatch naming the parameter's path, the value and the rule."""
    specs = []
    for path, point in corner_points(space):
        document = spec_for_trial(base, point)
        try:
            Spec.model_validate(document)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "spec"
            raise SpecMismatch(
                f"search_space.{path}",
                f"at {point[path]!r} the trial's spec breaks a rule at {where}: {first['msg']}",
            ) from None
        specs.append(document)
    return specs
