"""What an upload is, told from its head (and its name) before any of it is parsed."""

from __future__ import annotations

import codecs
import zipfile
from typing import BinaryIO, Literal

from engine.errors import DataError

SourceFormat = Literal["csv", "tsv", "jsonl", "parquet", "npz", "image_zip"]
PARQUET_MAGIC = b"PAR1"
ZIP_MAGIC = b"PK\x03\x04"
UTF8_BOM = codecs.BOM_UTF8
# The head a file's format, then a CSV's dialect, is told from.
SNIFF_BYTES = 64 << 10
TSV_NAMES = (".tsv", ".tab")
JSONL_NAMES = (".jsonl", ".ndjson")


def detect_format(
    head: bytes, filename: str | None, source: BinaryIO | None = None
) -> SourceFormat:
    """By content first (magic bytes, a leading `{`), the name for TSV and to catch mistakes.

    A ZIP is NPZ arrays when its members are `.npy` files, else a folder-per-class image set.
    """
    name = (filename or "").lower()
    if head.startswith(PARQUET_MAGIC):
        return "parquet"
    if name.endswith((".parquet", ".pq")):
        raise DataError("file is named .parquet but is not a Parquet file")
    if head.startswith(ZIP_MAGIC):
        if source is None:
            raise DataError("a ZIP file needs its content to tell NPZ from images")
        try:
            names = zipfile.ZipFile(source).namelist()
        except zipfile.BadZipFile as exc:
            raise DataError(f"cannot read ZIP: {exc}") from exc
        return "npz" if names and all(n.endswith(".npy") for n in names) else "image_zip"
    if name.endswith((".npz", ".zip")):
        raise DataError(f"file is named {filename!r} but is not a ZIP archive")
    if name.endswith(JSONL_NAMES) or head.removeprefix(UTF8_BOM).lstrip()[:1] == b"{":
        return "jsonl"
    if name.endswith(TSV_NAMES):
        return "tsv"
    return "csv"
