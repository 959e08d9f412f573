"""The warnings a table profile gives about its columns (many missing values, a single value,
too many categories), apart from the statistics they judge, with the thresholds they use."""

from __future__ import annotations

from engine.data.profile.results import ColumnProfile, ProfileWarning

MANY_MISSING_RATIO = 0.5
HIGH_CARDINALITY = 1000
HIGH_CARDINALITY_RATIO = 0.5


def column_warnings(column: ColumnProfile, rows: int) -> list[ProfileWarning]:
    warnings = []
    present = rows - column.missing
    if rows and column.missing > MANY_MISSING_RATIO * rows:
        share = column.missing / rows
        warnings.append(
            ProfileWarning(column.name, "many_missing", f"{share:.0%} of the values are missing")
        )
    if column.unique <= 1:
        what = "has no values" if column.unique == 0 else "has one value in every row"
        warnings.append(ProfileWarning(column.name, "constant", f"the column {what}"))
    if column.type == "categorical" and (
        column.unique > HIGH_CARDINALITY
        or (column.unique > 50 and column.unique > HIGH_CARDINALITY_RATIO * present)
    ):
        warnings.append(
            ProfileWarning(
                column.name,
                "high_cardinality",
                f"{column.unique:,} distinct values in {present:,} rows; one-hot encoding "
                "would be very wide (consider an embedding, or dropping an identifier)",
            )
        )
    return warnings
