"""The base of every spec section, and the tagged union its sections use (error locations
without pydantic's union tag, so a mistake reads the path the user wrote)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError
from pydantic_core.core_schema import ErrorType


class SpecModel(BaseModel):
    # A typo in a field name is a mistake the user wants to hear about, not a silent default.
    model_config = ConfigDict(extra="forbid")


def tagged_union(
    key: str, tags: list[str], infer: Callable[[dict], str | None]
) -> tuple[Discriminator, WrapValidator]:
    """A discriminator reading `key` (or `infer` when absent) and a wrap validator that drops
    the union tag from error locations and names the allowed values when the tag is wrong."""
    allowed = ", ".join(repr(tag) for tag in tags)

    def tag_of(value: Any) -> str | None:
        if isinstance(value, dict):
            return value[key] if key in value else infer(value)
        return getattr(value, key, None)

    def without_tag(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(value)
        except ValidationError as exc:
            raise _relocated(exc, key, allowed, tag_of(value)) from None

    return Discriminator(tag_of), WrapValidator(without_tag)


# Our own error types, re-created when an outer union passes an inner union's error through.
_TAG_ERRORS = {
    "unknown_tag": "unknown {key} {tag}; expected one of: {expected}",
    "missing_tag": "expected an object with a {key}, one of: {expected}",
}
# pydantic's own error types; any other is a section's custom error, re-created from its text.
_CORE_ERRORS = frozenset(get_args(ErrorType))


def _relocated(exc: ValidationError, key: str, allowed: str, tag: Any) -> ValidationError:
    errors: list[InitErrorDetails] = []
    for error in exc.errors():
        loc, kind, ctx = error["loc"], error["type"], error.get("ctx")
        if not loc and kind in ("union_tag_invalid", "union_tag_not_found"):
            # `expected` is the context key the service's error handler lists as `allowed`.
            kind = "missing_tag" if tag is None else "unknown_tag"
            ctx = {"key": key, "tag": repr(tag), "expected": allowed}
            loc = () if tag is None else (key,)
        elif loc and loc[0] == tag:
            loc = loc[1:]
        problem: Any = kind
        if kind in _TAG_ERRORS:
            problem = PydanticCustomError(kind, _TAG_ERRORS[kind], ctx)
        elif kind not in _CORE_ERRORS:
            problem = PydanticCustomError(kind, error["msg"])
        details = InitErrorDetails(type=problem, loc=loc, input=error["input"])
        if ctx is not None and kind not in _TAG_ERRORS and kind in _CORE_ERRORS:
            details["ctx"] = ctx
        errors.append(details)
    return ValidationError.from_exception_data(exc.title, errors)
