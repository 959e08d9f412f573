"""Errors the engine raises; the service maps each to an HTTP status or a job error code."""

from __future__ import annotations


class EngineError(Exception):
    code = "engine_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class SpecMismatch(EngineError):
    """The spec does not fit the data (a target that is not a column, ...)."""

    code = "invalid_spec"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message


class DataError(EngineError):
    """The data cannot be read or trained on (malformed file, too few rows, ...)."""

    code = "bad_dataset"


class InvalidInstances(EngineError):
    """Rows sent for prediction do not match what the model was trained on."""

    code = "invalid_instances"

    def __init__(self, problems: list[dict]) -> None:
        first = problems[0]
        super().__init__(f"{first['field']}: {first['reason']}")
        self.problems = problems


class TrainingDiverged(EngineError):
    code = "diverged"


class TrainingCancelled(EngineError):
    code = "cancelled"
