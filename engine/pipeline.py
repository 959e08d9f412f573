"""Pipelines: raw instances in, model inputs out; model outputs in, predictions out.

Three kinds share one interface, so training, inference and the dry run need not care which:
- `table`: rows of named columns (impute, clip, scale or bin, encode categories, select;
  engine/data/preprocess/)
- `arrays`: images [C, H, W], sequences [T, C], vectors [D] (engine/data/arrays/)
- `windows`: a time series cut into windows of past rows, for forecasting (engine/data/windows.py)
The fitted state is JSON (`to_dict`), saved as the model's `preprocess.json`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from itertools import chain
from operator import itemgetter
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from engine.data.arrays.preprocessor import ArrayPreprocessor
from engine.data.preprocess.encoding import NumericFeature, Preprocessor
from engine.data.windows import WindowScaler
from engine.errors import InvalidInstances
from engine.models.tabular import EmbeddedInput

NUMBER_TYPES = (int, float)
MAX_PROBLEMS = 20


class Pipeline(ABC):
    kind: str

    @property
    @abstractmethod
    def input_shape(self) -> tuple[int, ...]: ...

    @property
    @abstractmethod
    def output_dim(self) -> int: ...

    @property
    @abstractmethod
    def target_kind(self) -> str:
        """ "classes", "numeric" or "none" (reconstruction)."""

    @property
    def embedded_inputs(self) -> list[EmbeddedInput]:
        """Input positions that hold category codes for the model to embed (tables only)."""
        return []

    @abstractmethod
    def inputs(self, instances: Sequence[Any]) -> np.ndarray:
        """Raw predict instances -> float32 model input [N, *input_shape]."""

    @abstractmethod
    def classes(self) -> list[Any]: ...

    @abstractmethod
    def decode_values(self, values: np.ndarray, inputs: np.ndarray) -> np.ndarray:
        """Numeric outputs in the model's scale -> the target's own units."""

    @abstractmethod
    def state(self) -> dict[str, Any]: ...

    def to_dict(self) -> dict[str, Any]:
        return {"pipeline": self.kind, "state": self.state()}

    def predictions(self, outputs: torch.Tensor, inputs: torch.Tensor) -> list[dict[str, Any]]:
        """One prediction per row: label + probabilities, value(s), or an anomaly score."""
        if self.target_kind == "classes":
            probabilities = class_probabilities(outputs)
            classes = self.classes()
            keys = [str(c) for c in classes]
            return [
                {
                    "label": classes[int(row.argmax())],
                    "probabilities": dict(zip(keys, row.tolist(), strict=True)),
                }
                for row in probabilities
            ]
        if self.target_kind == "numeric":
            values = self.decode_values(
                outputs.float().reshape(len(outputs), -1).numpy(), inputs.numpy()
            )
            if values.shape[1] == 1:
                return [{"value": float(v)} for v in values[:, 0]]
            return [{"values": row.tolist()} for row in values]
        # Reconstruction: how far the output is from the (preprocessed) input.
        error = (outputs.float() - inputs.float()).pow(2).reshape(len(outputs), -1).mean(dim=1)
        return [{"anomaly_score": float(e)} for e in error]


def class_probabilities(outputs: torch.Tensor) -> np.ndarray:
    """float64 [N, n_classes]; a single output is binary cross-entropy's logit of class 1
    (softmax over one output would always say 1.0)."""
    if outputs.shape[1] == 1:
        p1 = torch.sigmoid(outputs[:, 0].double())
        return torch.stack([1 - p1, p1], dim=1).numpy()
    return torch.softmax(outputs, dim=1, dtype=torch.float64).numpy()


class _PreprocessorPipeline(Pipeline):
    """A pipeline over a fitted preprocessor that carries its own target encoding."""

    def __init__(self, preprocessor: Preprocessor | ArrayPreprocessor) -> None:
        self.preprocessor = preprocessor

    @property
    def target_kind(self) -> str:
        return self.preprocessor.target.kind

    def classes(self) -> list[Any]:
        return self.preprocessor.target.classes

    def decode_values(self, values: np.ndarray, inputs: np.ndarray) -> np.ndarray:
        return self.preprocessor.decode_regression(values.astype(np.float64))

    def state(self) -> dict[str, Any]:
        return self.preprocessor.to_dict()


class TablePipeline(_PreprocessorPipeline):
    kind = "table"
    preprocessor: Preprocessor

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.preprocessor.input_dim,)

    @property
    def output_dim(self) -> int:
        if self.target_kind == "none":
            return self.preprocessor.input_dim
        return self.preprocessor.output_dim

    @property
    def embedded_inputs(self) -> list[EmbeddedInput]:
        return [EmbeddedInput(*column) for column in self.preprocessor.embedded_columns()]

    def inputs(self, instances: Sequence[Any]) -> np.ndarray:
        return self.preprocessor.encode(*self.rows_to_columns(instances))

    def rows_to_columns(self, instances: Sequence[Any]) -> tuple[np.ndarray, dict[str, pa.Array]]:
        """From JSON rows: the numeric features' values (float64 [rows, numeric features],
        NaN for null) and the other columns as Arrow strings. Every problem is named by row
        and column.

        Numbers skip Arrow: a predict batch is small, and each Arrow call would release the
        GIL, which a busy event loop then holds for a switch interval before the batcher
        gets it back."""
        names = self.preprocessor.plan.numeric_names
        numbers = _plain_numbers(instances, names)
        columns = self._checked_columns(instances, numbers_too=numbers is None)
        if numbers is None:  # names is not empty
            numbers = np.column_stack([columns.pop(name) for name in names])
        return numbers, columns

    def _checked_columns(self, instances: Sequence[Any], numbers_too: bool) -> dict[str, Any]:
        problems: list[dict[str, str]] = []
        columns: dict[str, np.ndarray | pa.Array] = {}
        for feature in self.preprocessor.features:
            numeric = isinstance(feature, NumericFeature)
            if numeric and not numbers_too:
                continue
            values = []
            for i, row in enumerate(instances):
                reason = _cell_problem(row, feature, numeric)
                if reason:
                    field = (
                        f"instances[{i}]"
                        if not isinstance(row, Mapping)
                        else (f"instances[{i}].{feature.name}")
                    )
                    problems.append({"field": field, "reason": reason})
                    continue
                value = row[feature.name]
                if numeric:
                    values.append(np.nan if value is None else float(value))
                else:
                    values.append(value if value is None else str(value))
            if len(problems) >= MAX_PROBLEMS:
                break
            if not problems:
                columns[feature.name] = (
                    np.array(values, dtype=np.float64) if numeric else pa.array(values, pa.string())
                )
        if problems:
            raise InvalidInstances(problems[:MAX_PROBLEMS])
        return columns


# What a numeric cell usually holds; a boolean, a string or a missing column takes the checks.
PLAIN_NUMBER_TYPES = {float, int, type(None)}


def _plain_numbers(instances: Sequence[Any], names: list[str]) -> np.ndarray | None:
    """The numeric columns of every row in a few C-level calls, when each row is an object
    holding each of them as a number or null (the usual case); None when some row needs the
    cell-by-cell checks, which name the problem."""
    if not names:
        return np.empty((len(instances), 0))
    row_values = itemgetter(*names)
    try:
        cells = [row_values(row) for row in instances]
    except (KeyError, TypeError, IndexError):
        return None
    if len(names) == 1:
        cells = [(cell,) for cell in cells]
    if not set(map(type, chain.from_iterable(cells))) <= PLAIN_NUMBER_TYPES:
        return None
    try:
        return np.array(cells, dtype=np.float64).reshape(len(instances), len(names))
    except OverflowError:
        return None


def _cell_problem(row: Any, feature: Any, numeric: bool) -> str | None:
    if not isinstance(row, Mapping):
        return "must be an object of column: value"
    if feature.name not in row:
        return f"missing column {feature.name!r}"
    value = row[feature.name]
    if value is None:
        return None
    if numeric:
        is_bool = isinstance(value, bool)
        if (is_bool and not feature.boolean) or not isinstance(value, NUMBER_TYPES):
            return f"expected a number or null, got {type(value).__name__}"
    elif not isinstance(value, str | int | float):
        return f"expected a string or null, got {type(value).__name__}"
    return None


class ArrayPipeline(_PreprocessorPipeline):
    kind = "arrays"
    preprocessor: ArrayPreprocessor

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.preprocessor.input_shape)

    @property
    def output_dim(self) -> int:
        return self.preprocessor.output_dim

    def inputs(self, instances: Sequence[Any]) -> np.ndarray:
        return self.preprocessor.transform(self.preprocessor.instances_to_array(list(instances)))


class WindowPipeline(Pipeline):
    kind = "windows"
    target_kind = "numeric"

    def __init__(self, scaler: WindowScaler) -> None:
        self.scaler = scaler

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.scaler.input_shape)

    @property
    def output_dim(self) -> int:
        return self.scaler.output_dim

    def classes(self) -> list[Any]:
        return []

    def decode_values(self, values: np.ndarray, inputs: np.ndarray) -> np.ndarray:
        return self.scaler.decode_target(values.astype(np.float64), inputs.astype(np.float64))

    def state(self) -> dict[str, Any]:
        return self.scaler.to_dict()

    def inputs(self, instances: Sequence[Any]) -> np.ndarray:
        """Each instance is a window of past rows, oldest first: row objects
        (`{"value": 1.2}`) or lists of numbers in channel order."""
        channels = self.scaler.channels
        problems: list[dict[str, str]] = []
        windows = []
        for i, window in enumerate(instances):
            if isinstance(window, Sequence) and all(isinstance(r, Mapping) for r in window):
                missing = {c for row in window for c in channels if c not in row}
                if missing:
                    problems.append(
                        {"field": f"instances[{i}]", "reason": f"rows lack {sorted(missing)}"}
                    )
                    continue
                window = [[row[c] for c in channels] for row in window]
            windows.append(window)
        if problems:
            raise InvalidInstances(problems[:MAX_PROBLEMS])
        return self.scaler.transform(self.scaler.instances_to_array(windows))


def pipeline_from_dict(state: Mapping[str, Any]) -> Pipeline:
    kind, inner = state["pipeline"], state["state"]
    if kind == "table":
        return TablePipeline(Preprocessor.from_dict(inner))
    if kind == "arrays":
        return ArrayPipeline(ArrayPreprocessor.from_dict(inner))
    if kind == "windows":
        return WindowPipeline(WindowScaler.from_dict(inner))
    raise ValueError(f"unknown pipeline {kind!r}")
