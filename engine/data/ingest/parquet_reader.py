"""Parquet: read in batches of rows and written again like any other upload, so that the stored
file is canonical (the writer's settings, in `convert_to_parquet`) whatever wrote this one."""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from engine.errors import DataError


class ParquetReader:
    source_format = "parquet"

    def __init__(self, source: BinaryIO) -> None:
        self.source = source

    def tables(self) -> Iterator[pa.Table]:
        try:
            parquet = pq.ParquetFile(self.source)
            if parquet.metadata.num_rows == 0:
                yield parquet.schema_arrow.empty_table()
            for batch in parquet.iter_batches(batch_size=256 << 10):
                yield pa.Table.from_batches([batch])
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataError(f"cannot read Parquet: {exc}") from exc
