"""Object store for uploads, Parquet tables and model folders (fsspec: file:// or s3://).

Keys are built from ids by the domains (`datasets/ds_.../data.parquet`), never from user
input; `Store` refuses anything else. Writes land under a temporary name and are renamed into
place, so a reader never sees half a file.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

import fsspec

KEY_PATTERN = re.compile(r"^[a-z]+(/[A-Za-z0-9_.-]+)+$")


class Store:
    def __init__(self, url: str) -> None:
        self.url = url
        self.fs, self.root = fsspec.core.url_to_fs(url)
        self.root = self.root.rstrip("/")
        self.is_local = "file" in self.fs.protocol or "local" in self.fs.protocol
        if self.is_local:
            self.fs.makedirs(self.root, exist_ok=True)

    def path(self, key: str) -> str:
        if not KEY_PATTERN.match(key) or ".." in key.split("/"):
            raise ValueError(f"invalid store key {key!r}")
        return f"{self.root}/{key}"

    @contextmanager
    def open_write(self, key: str) -> Iterator[BinaryIO]:
        """Write a new object; it appears under `key` only if the block finishes."""
        final = self.path(key)
        if not self.is_local:
            # Object stores publish a put atomically on close.
            with self.fs.open(final, "wb") as fh:
                yield fh
            return
        parent = final.rsplit("/", 1)[0]
        self.fs.makedirs(parent, exist_ok=True)
        temporary = f"{parent}/.tmp-{uuid.uuid4().hex}"
        try:
            with self.fs.open(temporary, "wb") as fh:
                yield fh
            self.fs.mv(temporary, final)
        except BaseException:
            if self.fs.exists(temporary):
                self.fs.rm(temporary)
            raise

    def open_read(self, key: str) -> BinaryIO:
        return self.fs.open(self.path(key), "rb")

    def write_bytes(self, key: str, data: bytes) -> None:
        with self.open_write(key) as fh:
            fh.write(data)

    def read_bytes(self, key: str) -> bytes:
        with self.open_read(key) as fh:
            return fh.read()

    def exists(self, key: str) -> bool:
        return self.fs.exists(self.path(key))

    def delete_prefix(self, prefix: str) -> None:
        path = self.path(prefix)
        if self.fs.exists(path):
            self.fs.rm(path, recursive=True)

    def ping(self) -> None:
        """Raise if the store cannot be written and read back."""
        key = f"health/{uuid.uuid4().hex}"
        self.write_bytes(key, b"ok")
        try:
            if self.read_bytes(key) != b"ok":
                raise OSError("store read back different bytes")
        finally:
            self.fs.rm(self.path(key))
