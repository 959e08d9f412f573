"""Profile a Parquet table: per-column statistics, duplicates, warnings; and a target's view.

The table profile is begun on the table's pieces while an upload is converted and finished
from the stored file (`table.TableProfiler`), a few columns at a time, so memory is about a few
columns plus one 64-bit hash per row (for duplicate rows). The target profile (`target`) works
on a bounded random sample.
Everything returned is plain dataclasses of JSON-ready values (`results`). The statistics of
each kind of column live in `columns`, the warnings drawn from them in `column_warnings`.
"""
