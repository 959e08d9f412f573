"""Object store for uploads, Parquet tables and model folders (fsspec: file:// or s3://).

Keys are built from ids by the domains (`datasets/ds_.../data.parquet`), never from user
input; `Store` refuses anything else. A reader never sees half a file: on a local store writes
land under a temporary name and are renamed into place; on S3 an object appears only when its
put (or multipart upload) completes, and a write that fails is aborted, never completed.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, BinaryIO

import fsspec

if TYPE_CHECKING:
    from service.core.settings import Settings

KEY_PATTERN = re.compile(r"^[a-z]+(/[A-Za-z0-9_.-]+)+$")


class Store:
    def __init__(self, url: str, **options: Any) -> None:
        """`options` go to the filesystem (s3fs: endpoint_url, key, secret, client_kwargs)."""
        self.url = url
        if url.startswith(("s3://", "s3a://")):
            # Another process (the API, a worker) writes objects this one then reads: a cached
            # listing would hide them, so every lookup asks the server.
            options.setdefault("use_listings_cache", False)
        self.fs, self.root = fsspec.core.url_to_fs(url, **options)
        self.root = self.root.rstrip("/")
        self.is_local = "file" in self.fs.protocol or "local" in self.fs.protocol
        if self.is_local:
            self.fs.makedirs(self.root, exist_ok=True)

    @classmethod
    def from_settings(cls, settings: Settings) -> Store:
        return cls(settings.effective_store_url, **settings.store_options)

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    def path(self, key: str) -> str:
        if not KEY_PATTERN.match(key) or ".." in key.split("/"):
            raise ValueError(f"invalid store key {key!r}")
        return f"{self.root}/{key}"

    @contextmanager
    def open_write(self, key: str) -> Iterator[BinaryIO]:
        """Write a new object; it appears under `key` only if the block finishes."""
        final = self.path(key)
        if not self.is_local:
            # An object is published by its close (a put, or the completion of a multipart
            # upload). fsspec's files close, and so publish, even when the block raises: a
            # failure discards the file instead (aborting its multipart upload), and an object
            # already under `key` stays as it was.
            fh = self.fs.open(final, "wb")
            try:
                yield fh
            except BaseException:
                _discard(fh)
                raise
            try:
                fh.close()
            except BaseException:
                _discard(fh)
                raise
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


def _discard(fh: Any) -> None:
    """Drop an unfinished write: its multipart upload (if one began) is aborted and the file
    is marked closed, so nothing flushes it later."""
    try:
        discard = getattr(fh, "discard", None)
        if discard is not None:
            discard()
    finally:
        fh.closed = True
