"""Convert a text upload (CSV, TSV, JSON Lines) to Parquet while it is still arriving.

Receiving a large file and parsing it each take about a core; one after the other, an upload
costs both. Here the received bytes also flow, through a small bounded pipe, to a thread that
parses them as they come, so by the time the last byte is stored the Parquet is nearly done.
The parsed pieces are profiled on the way too (`profiler`), so that only the statistics that
need a whole column are left for after the upload. Parquet and ZIP uploads need the whole file
(their index is at the end); they are converted after the upload, as before.
"""

from __future__ import annotations

import queue
import threading
from collections import deque

from engine.data.ingest import convert_to_parquet
from engine.data.ingest.formats import PARQUET_MAGIC, SNIFF_BYTES, ZIP_MAGIC, detect_format
from engine.data.ingest.table import TableLimits, TableSummary
from engine.data.profile.table import TableProfiler
from engine.errors import DataError
from service.core.store import Store

# Hand-ins of about a megabyte each: what may wait between the receiver and the parser.
PIPE_CHUNKS = 8
_END = object()


class ConversionAborted(Exception):
    """The upload was refused or ended early; the conversion stops and writes nothing."""


class _BytePipe:
    """`read()` for the parsing thread over chunks handed in by the receiving thread, a list
    of them at a time (as they came off the network: joining them here would be one more copy
    of the upload)."""

    def __init__(self) -> None:
        self._chunks: queue.Queue[list[bytes] | object] = queue.Queue(PIPE_CHUNKS)
        self._waiting: deque[bytes] = deque()  # the rest of the last list taken
        self._buffer = b""
        self._at_end = False
        self.aborted = threading.Event()
        # Set when the reader stops early (a parse error): the writer stops handing in.
        self.reader_gone = threading.Event()

    def put(self, data: list[bytes] | object) -> None:
        while not self.reader_gone.is_set() and not self.aborted.is_set():
            try:
                self._chunks.put(data, timeout=0.1)
                return
            except queue.Full:
                continue

    def read(self, size: int = -1) -> bytes:
        """Up to `size` bytes (all that is left, when negative), b"" at the end. A read may
        return fewer: a chunk is handed on as it came, not joined to the next (copies cost)."""
        if size < 0:
            parts, self._buffer = [self._buffer], b""
            while (chunk := self._next_chunk()) is not None:
                parts.append(chunk)
            return b"".join(parts)
        data = self._buffer or self._next_chunk() or b""
        if len(data) > size:
            data, self._buffer = data[:size], data[size:]
        else:
            self._buffer = b""
        return data

    def _next_chunk(self) -> bytes | None:
        """The next chunk handed in, waiting for it; None at the end."""
        while not self._waiting:
            if self._at_end:
                return None
            if self.aborted.is_set():
                raise ConversionAborted
            try:
                chunks = self._chunks.get(timeout=0.1)
            except queue.Empty:
                continue
            if chunks is _END:
                self._at_end = True
            else:
                assert isinstance(chunks, list)
                self._waiting.extend(chunk for chunk in chunks if chunk)
        return self._waiting.popleft()


class LiveConversion:
    """Feed it the upload's bytes in order (`feed`, a list of chunks at a time), then `finish`
    for the summary; `profiler` has then seen every piece (finish it from the stored table).

    `finish` returns None when the upload was not converted on the way (not a text format),
    and raises what the conversion raised (a DataError names the line)."""

    def __init__(self, store: Store, key: str, limits: TableLimits):
        self._store = store
        self._key = key
        self._limits = limits
        self.profiler = TableProfiler()
        self._pipe = _BytePipe()
        self._thread: threading.Thread | None = None
        self._decided = False
        self._summary: TableSummary | None = None
        self._error: BaseException | None = None

    def feed(self, chunks: list[bytes], filename: str | None) -> None:
        if not self._decided:
            self._decided = True
            self._start_if_text(b"".join(chunks)[:SNIFF_BYTES], filename)
        if self._thread is not None:
            self._pipe.put(chunks)

    def _start_if_text(self, first: bytes, filename: str | None) -> None:
        if first.startswith((PARQUET_MAGIC, ZIP_MAGIC)):
            return
        try:
            fmt = detect_format(first, filename)
        except DataError:
            return  # the conversion after the upload reports it, with the same words
        if fmt not in ("csv", "tsv", "jsonl"):
            return
        self._thread = threading.Thread(
            target=self._convert, args=(fmt,), name="live-ingest", daemon=True
        )
        self._thread.start()

    def _convert(self, fmt: str) -> None:
        try:
            with self._store.open_write(self._key) as sink:
                self._summary = convert_to_parquet(
                    self._pipe, fmt, sink, self._limits, on_piece=self.profiler.add
                )
        except BaseException as exc:  # handed to the request thread by finish()
            self._error = exc
        finally:
            self._pipe.reader_gone.set()

    def finish(self) -> TableSummary | None:
        """Wait for the conversion of the whole upload (call once the upload is stored)."""
        if self._thread is None:
            return None
        self._pipe.put(_END)
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._summary

    def abort(self) -> None:
        """Stop and discard: nothing is left under the key."""
        if self._thread is not None:
            self._pipe.aborted.set()
            self._thread.join()
