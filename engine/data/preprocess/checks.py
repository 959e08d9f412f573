"""What can be checked of a table spec before training, from the dataset's schema alone: the
columns exist and suit the task, and every `data.preprocess` setting applies to the columns it
reaches. A setting that cannot apply is refused (`SpecMismatch` naming it) before anything is
fitted, so the dry run reports it without reading a row.
"""

from __future__ import annotations

import pyarrow as pa

from engine.data.ingest.table import logical_type
from engine.data.preprocess.columns import (
    SETTINGS_ROOT,
    column_kind,
    column_settings,
    resolve_features,
)
from engine.errors import SpecMismatch
from engine.spec import Spec
from engine.spec.data import ColumnPreprocess, PreprocessConfig

# Which fields of `ColumnPreprocess` apply to which column type.
NUMERIC_ONLY = ("scale", "outliers", "binning")
CATEGORICAL_ONLY = ("encoding", "unseen", "max_categories", "embedding_dim")


def pat_is_float(dtype: pa.DataType) -> bool:
    return pa.types.is_floating(dtype) or pa.types.is_decimal(dtype)


def check_spec_against_schema(spec: Spec, schema: pa.Schema) -> None:
    """What can be checked before training: the columns exist and suit the task, and every
    preprocess setting applies to the columns it reaches."""
    features = resolve_features(spec, schema)
    if spec.task == "forecasting":
        for name in [spec.target, *features]:
            if logical_type(schema.field(name).type) != "numeric":
                raise SpecMismatch(
                    "features" if name != spec.target else "target",
                    f"forecasting reads numeric columns; {name!r} is not numeric",
                )
    check_preprocess(spec, schema, features)
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


def check_preprocess(spec: Spec, schema: pa.Schema, features: list[str]) -> None:
    """Refuse, naming the field, any `data.preprocess` setting that cannot apply."""
    config = spec.data.preprocess
    if spec.task == "forecasting":
        require_default_preprocess(spec, "forecasting windows")
        return
    for name in config.columns:
        if name not in features:
            what = "the target" if name == spec.target else "not a feature column"
            raise SpecMismatch(f"{SETTINGS_ROOT}.columns.{name}", f"{name!r} is {what}")
    for kind in ("numeric", "categorical"):
        own = getattr(config, kind)
        _check_settings(own, own, kind, f"{SETTINGS_ROOT}.{kind}", None)
    for name, own in config.columns.items():
        kind = column_kind(schema.field(name).type)
        merged = column_settings(config, name, kind)[0]
        _check_settings(own, merged, kind, f"{SETTINGS_ROOT}.columns.{name}", name)
    if spec.target is None and config.selection.top_k is not None:
        raise SpecMismatch(
            f"{SETTINGS_ROOT}.selection.top_k",
            f"ranks columns by mutual information with the target; task {spec.task} has none",
        )
    if spec.task == "reconstruction":
        for name in features:
            kind = column_kind(schema.field(name).type)
            settings, paths = column_settings(config, name, kind)
            if kind == "categorical" and settings.encoding == "embedding":
                raise SpecMismatch(
                    paths["encoding"],
                    "reconstruction rebuilds the encoded input; an embedding code is not a "
                    "value to rebuild (use onehot or ordinal)",
                )


def require_default_preprocess(spec: Spec, what: str) -> None:
    """Data that is not a table of feature columns (`what`: "forecasting windows", "arrays")
    has its own scaling rule; table settings there would be silently ignored, so refuse them."""
    if spec.data.preprocess != PreprocessConfig():
        raise SpecMismatch(
            SETTINGS_ROOT, f"applies to table feature columns; {what} are scaled by their own rule"
        )


def _check_settings(
    own: ColumnPreprocess, effective: ColumnPreprocess, kind: str, path: str, column: str | None
) -> None:
    """Each field set in `own` (a type's defaults when `column` is None, else one column's
    overrides) must apply to a column of `kind` under its `effective` settings."""
    other = "categorical" if kind == "numeric" else "numeric"
    subject = f"{column!r} is {kind}" if column else f"set it under {SETTINGS_ROOT}.{other}"
    for name in sorted(own.model_fields_set):
        value = getattr(own, name)
        if value is None:
            continue
        where = f"{path}.{name}"
        if name in (CATEGORICAL_ONLY if kind == "numeric" else NUMERIC_ONLY):
            raise SpecMismatch(where, f"applies to {other} columns; {subject}")
        if kind == "categorical" and name == "impute" and value in ("mean", "median"):
            raise SpecMismatch(
                where, f"{value} needs numbers; categories take most_frequent, constant or drop"
            )
        if kind == "numeric" and name == "fill_value" and isinstance(value, str):
            raise SpecMismatch(where, "numeric columns are filled with a number")
        if name == "unseen" and (effective.encoding or "onehot") != "onehot":
            raise SpecMismatch(
                where,
                "applies to onehot encoding; ordinal and embedding codes give unseen "
                "categories code 0",
            )
        # On the type's defaults it is the size for whichever columns choose embedding.
        if name == "embedding_dim" and column and effective.encoding != "embedding":
            raise SpecMismatch(where, "applies to encoding 'embedding'")
        if name == "scale" and effective.binning is not None:
            raise SpecMismatch(
                where, "binning replaces the value by its bin; scaling does not apply"
            )
