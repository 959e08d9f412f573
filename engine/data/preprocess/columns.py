"""Which table columns are features, and which `data.preprocess` settings each one gets.

A column's settings are its type's defaults (`numeric`, `categorical`) overridden field by
field by `columns`, each field with the spec path it came from, so the checks, the cleaning and
the fitting all read one resolution and an error names the field the user wrote.
"""

from __future__ import annotations

import pyarrow as pa

from engine.data.ingest.table import logical_type
from engine.errors import SpecMismatch
from engine.spec import Spec
from engine.spec.data import ColumnPreprocess, PreprocessConfig

SETTINGS_ROOT = "data.preprocess"


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


def column_kind(dtype: pa.DataType) -> str:
    """Numbers, booleans and datetimes are encoded as numbers ("numeric"); the rest are
    "categorical"."""
    return "categorical" if logical_type(dtype) == "categorical" else "numeric"


def column_settings(
    config: PreprocessConfig, name: str, kind: str
) -> tuple[ColumnPreprocess, dict[str, str]]:
    """A column's settings: its type's defaults overridden field by field by `columns[name]`,
    and for each field the spec path it came from (to name it in an error)."""
    base = config.numeric if kind == "numeric" else config.categorical
    own = config.columns.get(name)
    paths = {f: f"{SETTINGS_ROOT}.{kind}.{f}" for f in ColumnPreprocess.model_fields}
    if own is None:
        return base, paths
    overrides = {f: getattr(own, f) for f in own.model_fields_set}
    paths.update({f: f"{SETTINGS_ROOT}.columns.{name}.{f}" for f in overrides})
    return base.model_copy(update=overrides), paths
