"""Feature and target encoding, fitted on the training split and replayed at predict time.

The fitted state is plain JSON (`Preprocessor.to_dict`), saved as `preprocess.json` beside the
weights, so a model folder alone turns raw rows into the tensor the network was trained on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.data.ingest import logical_type
from engine.errors import DataError, SpecMismatch
from engine.spec import Spec

MAX_CATEGORIES = 100


@dataclass
class NumericFeature:
    name: str
    fill: float
    mean: float
    scale: float
    kind: str = "numeric"
    # A boolean column is trained as 0/1; at predict time it takes true/false as well.
    boolean: bool = False

    @property
    def width(self) -> int:
        return 1


@dataclass
class CategoricalFeature:
    name: str
    categories: list[str]
    kind: str = "categorical"

    @property
    def width(self) -> int:
        return len(self.categories)


Feature = NumericFeature | CategoricalFeature


@dataclass
class TargetEncoding:
    name: str
    kind: str  # "classes" | "numeric"
    classes: list[Any] = field(default_factory=list)
    mean: float = 0.0
    scale: float = 1.0


@dataclass
class Preprocessor:
    task: str
    features: list[Feature]
    target: TargetEncoding

    @property
    def input_dim(self) -> int:
        return sum(f.width for f in self.features)

    @property
    def output_dim(self) -> int:
        return len(self.target.classes) if self.target.kind == "classes" else 1

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def transform(self, table: pa.Table) -> np.ndarray:
        """Raw columns -> float32 matrix [rows, input_dim]; missing and unseen values are
        handled by the fitted rules (imputation, all-zero one-hot)."""
        blocks = [_encode_feature(f, table.column(f.name)) for f in self.features]
        return np.concatenate(blocks, axis=1).astype(np.float32, copy=False)

    def encode_target(self, column: pa.ChunkedArray | pa.Array) -> np.ndarray:
        if self.target.kind == "classes":
            index = pc.index_in(column, value_set=pa.array(self.target.classes))
            return index.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
        values = _as_float(column)
        return ((values - self.target.mean) / self.target.scale).astype(np.float32)

    def decode_regression(self, values: np.ndarray) -> np.ndarray:
        return values * self.target.scale + self.target.mean

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": 1,
            "task": self.task,
            "features": [asdict(f) for f in self.features],
            "target": asdict(self.target),
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> Preprocessor:
        features: list[Feature] = []
        for item in state["features"]:
            item = dict(item)
            kind = item.pop("kind")
            features.append(
                NumericFeature(**item) if kind == "numeric" else CategoricalFeature(**item)
            )
        return cls(task=state["task"], features=features, target=TargetEncoding(**state["target"]))


def resolve_features(spec: Spec, schema: pa.Schema) -> list[str]:
    """The input columns a spec names, checked against the dataset's columns."""
    names = schema.names
    if spec.target is not None and spec.target not in names:
        raise SpecMismatch("target", f"{spec.target!r} is not a column of the dataset")
    if spec.features is None:
        return [n for n in names if n != spec.target]
    for i, name in enumerate(spec.features):
        if name not in names:
            raise SpecMismatch(f"features[{i}]", f"{name!r} is not a column of the dataset")
    return list(spec.features)


def drop_missing_target(table: pa.Table, target: str | None) -> pa.Table:
    if target is None:
        return table
    column = table.column(target)
    if column.null_count == 0:
        return table
    return table.filter(pc.is_valid(column))


def fit_preprocessor(spec: Spec, train: pa.Table) -> Preprocessor:
    """Fit encoders on the training rows only, so no statistic leaks from held-out rows."""
    check_spec_against_schema(spec, train.schema)
    feature_names = resolve_features(spec, train.schema)
    features = [_fit_feature(name, train.column(name)) for name in feature_names]
    if not any(f.width for f in features):
        raise DataError("no usable feature columns: every feature is empty")
    target = train.column(spec.target) if spec.target is not None else None
    return Preprocessor(spec.task, features, _fit_target(spec, target))


def _fit_feature(name: str, column: pa.ChunkedArray) -> Feature:
    if logical_type(column.type) == "categorical":
        counts = pc.value_counts(column.cast(pa.string()).drop_null())
        ranked = sorted(
            zip(
                counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True
            ),
            key=lambda vc: (-vc[1], vc[0]),
        )
        return CategoricalFeature(name, [v for v, _ in ranked[:MAX_CATEGORIES]])
    values = _as_float(column)
    present = values[~np.isnan(values)]
    boolean = pa.types.is_boolean(column.type)
    if present.size == 0:
        return NumericFeature(name, fill=0.0, mean=0.0, scale=1.0, boolean=boolean)
    std = float(present.std())
    return NumericFeature(
        name,
        fill=float(np.median(present)),
        mean=float(present.mean()),
        scale=std if std > 1e-12 else 1.0,
        boolean=boolean,
    )


def _fit_target(spec: Spec, column: pa.ChunkedArray | None) -> TargetEncoding:
    if spec.task == "reconstruction" or column is None:
        return TargetEncoding("", "none")
    if spec.task == "classification":
        classes = sorted(pc.unique(column).drop_null().to_pylist(), key=lambda v: (str(type(v)), v))
        if len(classes) < 2:
            raise DataError(f"target {spec.target!r} has fewer than 2 classes in the training rows")
        return TargetEncoding(spec.target, "classes", classes=classes)
    values = _as_float(column)
    std = float(values.std())
    return TargetEncoding(spec.target, "numeric", mean=float(values.mean()), scale=std or 1.0)


def pat_is_float(dtype: pa.DataType) -> bool:
    return pa.types.is_floating(dtype) or pa.types.is_decimal(dtype)


def _as_float(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    if pa.types.is_temporal(column.type):
        column = column.cast(pa.int64())
    return column.cast(pa.float64()).to_numpy(zero_copy_only=False)


def _encode_feature(feature: Feature, column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    if isinstance(feature, NumericFeature):
        values = _as_float(column)
        values = np.where(np.isnan(values), feature.fill, values)
        return ((values - feature.mean) / feature.scale).reshape(-1, 1)
    index = pc.index_in(
        column.cast(pa.string()), value_set=pa.array(feature.categories, pa.string())
    )
    codes = index.fill_null(-1).to_numpy(zero_copy_only=False)
    onehot = np.zeros((len(codes), feature.width), dtype=np.float32)
    known = codes >= 0
    onehot[np.nonzero(known)[0], codes[known]] = 1.0
    return onehot


def check_spec_against_schema(spec: Spec, schema: pa.Schema) -> None:
    """What can be checked before training: the columns exist and suit the task."""
    features = resolve_features(spec, schema)
    if spec.task == "forecasting":
        for name in [spec.target, *features]:
            if logical_type(schema.field(name).type) != "numeric":
                raise SpecMismatch(
                    "features" if name != spec.target else "target",
                    f"forecasting reads numeric columns; {name!r} is not numeric",
                )
    if spec.target is None:
        return
    target_type = schema.field(spec.target).type
    if pa.types.is_null(target_type):
        raise SpecMismatch("target", f"column {spec.target!r} has no values")
    if spec.task == "classification" and pat_is_float(target_type):
        raise SpecMismatch(
            "task",
            f"target {spec.target!r} holds real numbers; use task 'regression' or give class "
            "labels",
        )
    if spec.task == "regression" and logical_type(target_type) not in ("numeric", "boolean"):
        raise SpecMismatch(
            "task", f"target {spec.target!r} is not numeric; regression needs a numeric target"
        )
