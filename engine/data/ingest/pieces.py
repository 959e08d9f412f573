"""Text uploads in pieces of whole records, read and cut ahead on a thread of their own.

A piece ends after a newline outside quotes, so pyarrow can parse it alone; it keeps the number
of its first line and stays in memory while it is parsed, so that a reader can locate a problem
on the file's line by scanning that piece again (`first_bad_utf8` here, the rest per format).
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterator
from typing import BinaryIO, NamedTuple, TypeVar

import numpy as np

from engine.errors import DataError

# What is cut, parsed and profiled at a time: a few pieces are in flight at once, so this
# bounds memory; big enough to keep the cores busy.
PIECE_BYTES = 4 << 20
PARSE_THREADS = os.cpu_count() or 1
# CSV pieces after the first are parsed as blocks of about this size, one per core at a time,
# each whole in one call: pyarrow then never splits a block itself, so it needs no quote-aware
# splitting (`newlines_in_values`, a quarter more than the parse itself) for quoted newlines.
# A piece is shared among the cores; not much less than this, as each call has a fixed cost.
BLOCK_BYTES = max(PIECE_BYTES // PARSE_THREADS, 512 << 10)
# Bytes are counted (newlines, quotes) this many at a time, into a buffer kept per thread.
COUNT_CHUNK_BYTES = 1 << 20
NEWLINE, QUOTE = ord("\n"), ord('"')
# One record longer than this is refused rather than buffered.
MAX_RECORD_BYTES = 64 << 20


class Piece(NamedTuple):
    """Whole records: `data[:end]`, kept as a reference (copying megabytes is not free); as
    `blocks` of whole records too, (start, end) offsets of about BLOCK_BYTES each."""

    data: bytes
    end: int
    first_line: int
    blocks: list[tuple[int, int]]

    def content(self) -> bytes:
        """The records as bytes of their own (a copy, unless they are all of `data`)."""
        return self.data if self.end == len(self.data) else self.data[: self.end]


def _read_more(source: BinaryIO, prefix: bytes, size: int) -> tuple[bytes, bool]:
    """`prefix` and the next bytes up to `size` in all, joined once; and whether the source
    ended (a stream may answer short reads, so only an empty read ends it)."""
    parts, got = ([prefix] if prefix else []), len(prefix)
    while got < size:
        data = source.read(size - got)
        if not data:
            return b"".join(parts), True
        parts.append(data)
        got += len(data)
    return b"".join(parts), False


_T = TypeVar("_T")


def prefetched(items: Iterator[_T], depth: int = 1) -> Iterator[_T]:
    """`items`, produced on a thread of their own: the next piece is read and cut (Python work,
    under the GIL) while pyarrow parses this one (C++, on both cores)."""
    handoff: queue.Queue = queue.Queue(depth)
    done = object()
    stop = threading.Event()

    def offer(item: object) -> bool:
        """Hand `item` over; False once the consumer has stopped (it reads no more)."""
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer(item):
                    return
            offer(done)
        except BaseException as exc:  # raised again on the consuming side
            offer(exc)

    producer = threading.Thread(target=produce, name="ingest-pieces", daemon=True)
    producer.start()
    try:
        while (item := handoff.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        producer.join()


def read_pieces(source: BinaryIO, quoted: bool) -> Iterator[Piece]:
    """Whole records, cut after a newline outside quotes, with the number of their first line.

    Quotes are balanced at a cut when the block before it holds an even number of `"`: with
    quotes doubled inside quoted fields, an odd count means the cut would fall in a field.
    """
    buffer = b""
    line = 1
    at_end = False
    want = PIECE_BYTES
    while not at_end or buffer:
        if not at_end and len(buffer) < want:
            buffer, at_end = _read_more(source, buffer, want)
        # `in` is a memchr, far cheaper than counting: most files have no quote at all.
        blocks = _record_blocks(buffer, quoted and b'"' in buffer, at_end)
        if not blocks:
            if len(buffer) >= MAX_RECORD_BYTES:
                raise DataError(
                    f"line {line}: a record longer than {MAX_RECORD_BYTES >> 20} MB "
                    "(or a quote that is never closed)"
                )
            want = len(buffer) * 2
            continue
        end = blocks[-1][1]
        yield Piece(buffer, end, line, blocks)
        line += count_byte(buffer, NEWLINE, 0, end)
        buffer = buffer[end:]
        want = PIECE_BYTES


def _record_blocks(buffer: bytes, quoted: bool, at_end: bool) -> list[tuple[int, int]]:
    """`buffer`'s whole records as consecutive (start, end) spans of about BLOCK_BYTES: all of
    it when the source is `at_end`, else up to its last whole record (none if it has none)."""
    spans, start, size = [], 0, len(buffer)
    while start < size:
        # The last block takes up to one and a half: no sliver of a block at the end.
        last = size - start <= BLOCK_BYTES + BLOCK_BYTES // 2
        if last and at_end:
            cut = size
        else:
            cut = _safe_cut(buffer, quoted, start, size if last else start + BLOCK_BYTES)
            if cut == start and not last:  # a record longer than a block: a longer block
                cut = _safe_cut(buffer, quoted, start, size)
            if cut == start:
                if not at_end:
                    break  # the rest waits for more bytes
                cut = size  # the last record, with no newline after it
        spans.append((start, cut))
        start = cut
    return spans


def _safe_cut(buffer: bytes, quoted: bool, start: int, end: int) -> int:
    """The end of the last whole record in `buffer[start:end]` (`start` when there is none),
    where `start` is the start of a record."""
    cut = buffer.rfind(b"\n", start, end) + 1
    if cut <= start or not quoted:
        return max(cut, start)
    quotes = count_byte(buffer, QUOTE, start, cut)
    while cut > start and quotes % 2:
        previous = max(buffer.rfind(b"\n", start, cut - 1) + 1, start)
        quotes -= buffer.count(b'"', previous, cut)
        cut = previous
    return cut


def count_byte(data: bytes, byte: int, start: int, end: int) -> int:
    """How many times `byte` occurs in `data[start:end]`. numpy counts a few times faster than
    `bytes.count` (this runs over every byte of an upload), a megabyte at a time into a buffer
    kept per thread: a fresh temporary the size of a piece costs more in page faults than the
    count itself."""
    if end <= start:
        return 0
    buffer = getattr(_count_buffers, "buffer", None)
    if buffer is None:
        buffer = _count_buffers.buffer = np.empty(COUNT_CHUNK_BYTES, dtype=bool)
    view = np.frombuffer(data, np.uint8, end - start, start)
    total = 0
    for at in range(0, view.size, COUNT_CHUNK_BYTES):
        part = view[at : at + COUNT_CHUNK_BYTES]
        matches = buffer[: part.size]
        np.equal(part, byte, out=matches)
        total += int(np.count_nonzero(matches))
    return total


_count_buffers = threading.local()


def _line_of_offset(piece: bytes, offset: int, first_line: int) -> int:
    return first_line + piece.count(b"\n", 0, offset)


def first_bad_utf8(piece: bytes, first_line: int) -> int | None:
    """The line of the first byte that is not UTF-8, or None when the piece decodes."""
    try:
        piece.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _line_of_offset(piece, exc.start, first_line)
    return None


def not_utf8(line: int, column: str | None = None) -> DataError:
    where = f" in column {column!r}" if column else ""
    return DataError(f"line {line}: bytes that are not UTF-8 text{where}; save the file as UTF-8")
