"""What a profile is: plain dataclasses of JSON-ready values, stored as JSON
(`dataclasses.asdict`) and read back (`table_profile_from_dict`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

PROFILE_VERSION = 1

ColumnType = Literal["numeric", "categorical", "boolean", "text", "datetime"]


@dataclass
class Histogram:
    edges: list[float]
    counts: list[int]


@dataclass
class NumericStats:
    min: float
    max: float
    mean: float
    std: float  # sample standard deviation (ddof=1), as pandas reports it
    quantiles: dict[str, float]
    histogram: Histogram


@dataclass
class DatetimeStats:
    min: str
    max: str


@dataclass
class ValueCount:
    value: str | int | float | bool
    count: int


@dataclass
class ColumnProfile:
    name: str
    type: ColumnType
    dtype: str
    missing: int
    unique: int
    numeric: NumericStats | None = None
    datetime: DatetimeStats | None = None
    top_values: list[ValueCount] | None = None


@dataclass
class ProfileWarning:
    column: str | None
    code: str  # constant | high_cardinality | many_missing | leakage_suspect
    message: str


@dataclass
class TableProfile:
    rows: int
    duplicate_rows: int
    columns: list[ColumnProfile]
    warnings: list[ProfileWarning] = field(default_factory=list)
    version: int = PROFILE_VERSION


@dataclass
class FeatureScore:
    column: str
    # pearson: correlation with a numeric target; mutual_information: normalised to [0, 1]
    method: Literal["pearson", "mutual_information"]
    score: float | None


@dataclass
class TargetProfile:
    column: str
    task: Literal["classification", "regression"]
    sample_rows: int
    classes: list[ValueCount] | None = None
    distribution: NumericStats | None = None
    features: list[FeatureScore] = field(default_factory=list)
    warnings: list[ProfileWarning] = field(default_factory=list)
    version: int = PROFILE_VERSION


def table_profile_from_dict(stored: dict[str, Any]) -> TableProfile:
    """A TableProfile from its JSON form (`dataclasses.asdict` of one)."""
    columns = []
    for c in stored["columns"]:
        numeric = c.get("numeric")
        if numeric is not None:
            numeric = NumericStats(**{**numeric, "histogram": Histogram(**numeric["histogram"])})
        datetime = DatetimeStats(**c["datetime"]) if c.get("datetime") else None
        tops = c.get("top_values")
        if tops is not None:
            tops = [ValueCount(**t) for t in tops]
        columns.append(
            ColumnProfile(**{**c, "numeric": numeric, "datetime": datetime, "top_values": tops})
        )
    return TableProfile(
        rows=stored["rows"],
        duplicate_rows=stored["duplicate_rows"],
        columns=columns,
        warnings=[ProfileWarning(**w) for w in stored["warnings"]],
        version=stored["version"],
    )
