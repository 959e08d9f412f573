"""Predict from raw rows: check them, replay the fitted preprocessing, run the network."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from engine.artifacts import load_model
from engine.data.preprocess import NumericFeature, Preprocessor
from engine.errors import InvalidInstances
from engine.spec import Spec

NUMBER_TYPES = (int, float)


class Predictor:
    def __init__(self, spec: Spec, preprocessor: Preprocessor, model: torch.nn.Module) -> None:
        self.spec = spec
        self.preprocessor = preprocessor
        self.model = model.eval()

    @classmethod
    def from_files(cls, files: Mapping[str, bytes]) -> Predictor:
        return cls(*load_model(files))

    def rows_to_table(self, instances: Sequence[Mapping[str, Any]]) -> pa.Table:
        """Columns of typed arrays from JSON rows; every problem is named by row and column."""
        problems: list[dict[str, str]] = []
        columns: dict[str, pa.Array] = {}
        for feature in self.preprocessor.features:
            name = feature.name
            values = []
            numeric = isinstance(feature, NumericFeature)
            for i, row in enumerate(instances):
                if not isinstance(row, Mapping):
                    if len(problems) < 20:
                        problems.append({"field": f"instances[{i}]", "reason": "must be an object"})
                    continue
                if name not in row:
                    problems.append(
                        {"field": f"instances[{i}].{name}", "reason": f"missing column {name!r}"}
                    )
                    continue
                value = row[name]
                if (
                    numeric
                    and value is not None
                    and (
                        (isinstance(value, bool) and not feature.boolean)
                        or not isinstance(value, NUMBER_TYPES)
                    )
                ):
                    problems.append(
                        {
                            "field": f"instances[{i}].{name}",
                            "reason": f"expected a number or null, got {type(value).__name__}",
                        }
                    )
                    continue
                if not numeric and value is not None and not isinstance(value, str | int | float):
                    problems.append(
                        {
                            "field": f"instances[{i}].{name}",
                            "reason": f"expected a string or null, got {type(value).__name__}",
                        }
                    )
                    continue
                values.append(value if numeric or value is None else str(value))
            if len(problems) >= 20:
                break
            if not problems:
                columns[name] = pa.array(values, pa.float64() if numeric else pa.string())
        if problems:
            raise InvalidInstances(problems)
        return pa.table(columns)

    @torch.inference_mode()
    def predict(self, instances: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        if not instances:
            return []
        x = self.preprocessor.transform(self.rows_to_table(instances))
        output = self.model(torch.from_numpy(x)).float()
        target = self.preprocessor.target
        if target.kind == "classes":
            probabilities = torch.softmax(output, dim=1).numpy()
            keys = [str(c) for c in target.classes]
            best = probabilities.argmax(axis=1)
            return [
                {
                    "label": target.classes[int(b)],
                    "probabilities": dict(zip(keys, row.tolist(), strict=True)),
                }
                for b, row in zip(best, probabilities, strict=True)
            ]
        values = self.preprocessor.decode_regression(output.squeeze(-1).numpy().astype(np.float64))
        return [{"value": float(v)} for v in values]
