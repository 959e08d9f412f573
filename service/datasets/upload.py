"""Receive a multipart upload straight into the store, chunk by chunk.

Starlette's form parser spools a whole file to a temporary file before the route runs; this
parser writes each chunk to its final store object as it arrives, hashes it on the way, and
stops at the size limit, so an oversized upload is refused without being buffered anywhere.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from python_multipart.multipart import (
    MultipartParseError,
    MultipartParser,
    MultipartState,
    parse_options_header,
)
from starlette.concurrency import run_in_threadpool

from service.core.errors import InvalidInput, TooLarge
from service.core.store import Store

FILE_FIELD = "file"
MAX_TEXT_FIELD_BYTES = 64 * 1024
# Room for the multipart framing around the file itself.
ENVELOPE_BYTES = 64 * 1024
FLUSH_BYTES = 1 << 20

UPLOAD_OPENAPI = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [FILE_FIELD],
                    "properties": {
                        FILE_FIELD: {"type": "string", "format": "binary"},
                        "name": {"type": "string", "description": "Display name"},
                    },
                }
            }
        },
    }
}


@dataclass
class ReceivedFile:
    filename: str | None = None
    size: int = 0
    sha256: str = ""
    head: bytes = b""
    fields: dict[str, str] = field(default_factory=dict)


class _PartCollector:
    """Multipart callbacks: file bytes go to `pending`, text fields to `fields`."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.pending: list[bytes] = []
        self.pending_bytes = 0
        self.result = ReceivedFile()
        self.digest = hashlib.sha256()
        self.seen_file = False
        self._header_name = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._field: str | None = None
        self._is_file = False
        self._text = bytearray()

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda d, s, e: self._append_header("name", d[s:e]),
            "on_header_value": lambda d, s, e: self._append_header("value", d[s:e]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }

    def _part_begin(self) -> None:
        self._headers, self._field, self._is_file, self._text = {}, None, False, bytearray()

    def _append_header(self, which: str, data: bytes) -> None:
        if which == "name":
            self._header_name += data
        else:
            self._header_value += data

    def _header_end(self) -> None:
        self._headers[self._header_name.lower()] = self._header_value
        self._header_name, self._header_value = b"", b""

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = params.get(b"name", b"").decode("utf-8", "replace")
        self._field = name
        if name == FILE_FIELD:
            if self.seen_file:
                raise InvalidInput(
                    "send exactly one 'file' part",
                    details=[{"field": FILE_FIELD, "reason": "more than one 'file' part"}],
                )
            self.seen_file = self._is_file = True
            filename = params.get(b"filename")
            self.result.filename = filename.decode("utf-8", "replace") if filename else None

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self._is_file:
            self.result.size += len(chunk)
            if self.result.size > self.max_bytes:
                raise TooLarge(
                    f"the upload is larger than the limit of {self.max_bytes // 2**20} MB",
                    details=[{"field": FILE_FIELD, "limit_bytes": self.max_bytes}],
                )
            if len(self.result.head) < 8:
                self.result.head += chunk[: 8 - len(self.result.head)]
            self.pending.append(chunk)
            self.pending_bytes += len(chunk)
        else:
            self._text += chunk
            if len(self._text) > MAX_TEXT_FIELD_BYTES:
                raise TooLarge(
                    f"form field {self._field!r} is larger than {MAX_TEXT_FIELD_BYTES} bytes",
                    details=[{"field": self._field}],
                )

    def _part_end(self) -> None:
        if not self._is_file and self._field:
            self.result.fields[self._field] = self._text.decode("utf-8", "replace")


@dataclass(frozen=True)
class UploadBody:
    """An upload as the HTTP layer hands it over: its two headers and its body's chunks as
    they come off the network."""

    content_type: str | None
    content_length: str | None
    chunks: AsyncIterator[bytes]


async def receive_upload(
    body: UploadBody,
    store: Store,
    key: str,
    max_bytes: int,
    on_file_data: Callable[[list[bytes], str | None], None] | None = None,
) -> ReceivedFile:
    """Stream the multipart field `file` of `body` into `store` under `key`.

    `on_file_data(chunks, filename)` sees the file's bytes too, in order, as lists of chunks
    of about a megabyte in all, on a worker thread (it may block: that slows the upload, not
    the event loop)."""
    content_type, params = parse_options_header(body.content_type)
    if content_type != b"multipart/form-data" or b"boundary" not in params:
        raise InvalidInput(
            "send the dataset as multipart/form-data with the file in field 'file'",
            details=[{"field": FILE_FIELD, "reason": "expected multipart/form-data"}],
        )
    declared = body.content_length
    if declared and declared.isdigit() and int(declared) > max_bytes + ENVELOPE_BYTES:
        raise TooLarge(
            f"the upload is larger than the limit of {max_bytes // 2**20} MB",
            details=[{"field": FILE_FIELD, "limit_bytes": max_bytes}],
        )

    collector = _PartCollector(max_bytes)
    parser = MultipartParser(params[b"boundary"], collector.callbacks())

    def write(chunks: list[bytes]) -> None:
        # Hashing releases the GIL: done here, off the event loop, like the write. The chunks
        # stay as they came off the network: joining them would copy the whole upload.
        for chunk in chunks:
            collector.digest.update(chunk)
            sink.write(chunk)
        if on_file_data is not None:
            on_file_data(chunks, collector.result.filename)

    async def flush() -> None:
        chunks, collector.pending, collector.pending_bytes = collector.pending, [], 0
        await run_in_threadpool(write, chunks)

    async with _writing(store, key) as sink:
        async for chunk in body.chunks:
            try:
                parser.write(chunk)
            except MultipartParseError as exc:
                raise _malformed(str(exc)) from exc
            # One hop to a thread per megabyte, not per network chunk.
            if collector.pending_bytes >= FLUSH_BYTES:
                await flush()
        parser.finalize()
        if collector.pending:
            await flush()
        if not collector.seen_file:
            raise InvalidInput(
                "the form has no 'file' field", details=[{"field": FILE_FIELD, "reason": "missing"}]
            )
        # The parser does not check this itself: a body cut short would pass for a whole file.
        if parser.state != MultipartState.END:
            raise _malformed("the body ends before the closing boundary")
    collector.result.sha256 = collector.digest.hexdigest()
    return collector.result


@asynccontextmanager
async def _writing(store: Store, key: str) -> AsyncIterator:
    """`store.open_write(key)`, opened and closed off the event loop: on S3 the close uploads
    the last part and completes the object (or, on failure, aborts the upload)."""
    writer = store.open_write(key)
    sink = await run_in_threadpool(writer.__enter__)
    try:
        yield sink
    except BaseException as exc:
        if not await run_in_threadpool(writer.__exit__, type(exc), exc, exc.__traceback__):
            raise
    else:
        await run_in_threadpool(writer.__exit__, None, None, None)


def _malformed(reason: str) -> InvalidInput:
    return InvalidInput(
        f"malformed multipart body: {reason}", details=[{"field": FILE_FIELD, "reason": reason}]
    )
