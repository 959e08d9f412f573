"""Uploads over the limit, against a real `trainyard api` process: 413 within a second, with
or without Content-Length, nothing left in the store or in temporary space, and the process
grows by under 50 MB however much the client tries to send.

The client is a raw socket: it sends the body piece by piece and stops as soon as the server
answers, as a real client would see the answer (httpx would keep writing into a closed
connection and report the broken pipe instead).
"""

from __future__ import annotations

import os
import select
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.e2e.fleet import free_port, service_env, stop, trainyard, wait_until_ready
from tests.sample_data import csv_bytes, mixed_classification

pytestmark = pytest.mark.e2e
KEY = "ty_sec_" + "u" * 24
LIMIT_MB = 5
BOUNDARY = "trainyard-limit-test"
MB = 2**20
# What the client tries to send: 40 times the limit.
ATTEMPT_BYTES = 200 * MB
MAX_GROWTH_BYTES = 50 * MB


@dataclass
class Server:
    port: int
    pid: int
    data_dir: Path
    temp_dir: Path


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("upload-limits")
    temp_dir = root / "tmp"
    temp_dir.mkdir()
    port = free_port()
    # The server's tempfile.gettempdir() is a folder of its own, so any spooling shows there.
    env = {
        **service_env(root / "data", port, KEY, max_upload_mb=str(LIMIT_MB)),
        "TMPDIR": str(temp_dir),
    }
    api = trainyard("api", env=env, log=root / "api.log")
    try:
        wait_until_ready(f"http://127.0.0.1:{port}", [api])
        # Warm up the upload path before anything is measured: imports, the first store folder,
        # and the memory pools a file of nearly the limit fills once (about 40 MB of them, kept
        # for reuse), so the measurements see what a refused upload costs, not first use.
        row = b"1.5,2.5,3.5,a\n"
        for content in (
            csv_bytes(mixed_classification(n=50)),
            b"x,y,z,label\n" + row * ((LIMIT_MB - 1) * MB // len(row)),
        ):
            warm = httpx.post(
                f"http://127.0.0.1:{port}/v1/datasets",
                headers={"Authorization": f"Bearer {KEY}"},
                files={"file": ("warm.csv", content, "text/csv")},
                timeout=60,
            )
            assert warm.status_code == 201, warm.text
        yield Server(port, api.pid, root / "data", temp_dir)
    finally:
        stop(api)


@dataclass
class Answer:
    status: int
    body: bytes
    seconds: float
    sent: int


def _multipart_pieces(field: str, filename: str | None, total: int) -> Iterator[bytes]:
    disposition = f'form-data; name="{field}"' + (f'; filename="{filename}"' if filename else "")
    yield f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
    row = b"1.5,2.5,3.5,a\n"
    piece = b"x,y,z,label\n" + row * (MB // len(row))
    for _ in range(total // len(piece)):
        yield piece
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


def _envelope_size(field: str, filename: str | None, total: int) -> int:
    return sum(len(p) for p in _multipart_pieces(field, filename, total))


def _send(port: int, pieces: Iterator[bytes], content_length: int | None) -> Answer:
    """POST the pieces (chunked when `content_length` is None), stopping once the server
    answers; the status and body of the answer."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    framing = (
        "Transfer-Encoding: chunked"
        if content_length is None
        else f"Content-Length: {content_length}"
    )
    head = (
        f"POST /v1/datasets HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {KEY}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n{framing}\r\n\r\n"
    )
    started = time.monotonic()
    sent = 0
    with sock:
        sock.sendall(head.encode())
        for piece in pieces:
            if select.select([sock], [], [], 0)[0]:
                break  # the server has answered
            data = piece if content_length is not None else b"%x\r\n%s\r\n" % (len(piece), piece)
            try:
                sock.sendall(data)
            except (BrokenPipeError, ConnectionResetError, TimeoutError):
                break
            sent += len(piece)
        else:
            if content_length is None:
                sock.sendall(b"0\r\n\r\n")
        status, body = _read_response(sock)
    return Answer(status, body, time.monotonic() - started, sent)


def _read_response(sock: socket.socket) -> tuple[int, bytes]:
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response: {received!r}"
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = next(
        int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:")
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, body[:length]


def _status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of the process, in bytes."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0]) * 1024
    return values


class PeakMemory:
    """The process's peak resident memory over a block, above its resident memory before.

    The kernel's high-water mark is reset through clear_refs where that is allowed; else RSS
    is sampled every few milliseconds."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()

    def __enter__(self) -> PeakMemory:
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
            self.resettable = True
        except OSError:
            self.resettable = False
        self.before = _status(self.pid)["VmRSS"]
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _status(self.pid)["VmRSS"])

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._sampler.join()
        now = _status(self.pid)
        self.peak = max(self.peak, now["VmRSS"], now["VmHWM"] if self.resettable else 0)

    @property
    def growth(self) -> int:
        return self.peak - self.before


def _files(folder: Path) -> set[str]:
    return {
        os.path.relpath(os.path.join(parent, name), folder)
        for parent, _, names in os.walk(folder)
        for name in names
    }


def _new_files(server: Server, before: set[str]) -> set[str]:
    """Files in the data folder that were not there `before` (the SQLite WAL may come and go)."""
    return {f for f in _files(server.data_dir) - before if not f.endswith(("-wal", "-shm"))}


def _assert_refused_cleanly(server: Server, pieces, content_length: int | None) -> Answer:
    stored_before = _files(server.data_dir)
    with PeakMemory(server.pid) as memory:
        answer = _send(server.port, pieces, content_length)
    assert answer.status == 413, answer.body
    assert b'"too_large"' in answer.body
    assert answer.seconds < 1.0, f"413 after {answer.seconds:.2f} s"
    assert memory.growth < MAX_GROWTH_BYTES, f"the API grew by {memory.growth / MB:.0f} MB"
    assert _new_files(server, stored_before) == set()
    assert _files(server.temp_dir) == set()
    return answer


def test_a_chunked_upload_without_content_length_is_cut_off_at_the_limit(server: Server) -> None:
    answer = _assert_refused_cleanly(
        server, _multipart_pieces("file", "big.csv", ATTEMPT_BYTES), content_length=None
    )
    # It was read up to the limit, not to the end.
    assert answer.sent < ATTEMPT_BYTES // 4


def test_a_declared_content_length_over_the_limit_is_refused_before_the_body(
    server: Server,
) -> None:
    size = _envelope_size("file", "big.csv", ATTEMPT_BYTES)
    answer = _assert_refused_cleanly(
        server, _multipart_pieces("file", "big.csv", ATTEMPT_BYTES), content_length=size
    )
    assert answer.sent < ATTEMPT_BYTES // 4


def test_a_content_length_that_lies_low_ends_the_body_where_it_says(server: Server) -> None:
    """A client that declares less than the limit but streams more: the server reads only the
    declared bytes (a file cut short, refused) and answers the bytes after them as a malformed
    next request; nothing is kept."""
    stored_before = _files(server.data_dir)
    with PeakMemory(server.pid) as memory:
        answer = _send(
            server.port, _multipart_pieces("file", "big.csv", ATTEMPT_BYTES), content_length=MB
        )
    assert answer.status in (400, 422), answer.body
    assert memory.growth < MAX_GROWTH_BYTES
    # uvicorn answers the garbage "next request" while the first one is still being refused:
    # its clean-up may finish just after the answer.
    deadline = time.monotonic() + 5
    while (new_files := _new_files(server, stored_before)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert new_files == set()
    assert _files(server.temp_dir) == set()


def test_an_oversized_text_field_is_refused(server: Server) -> None:
    answer = _assert_refused_cleanly(
        server, _multipart_pieces("name", None, ATTEMPT_BYTES), content_length=None
    )
    assert b"name" in answer.body
    assert answer.sent < ATTEMPT_BYTES // 4


def test_the_server_still_takes_uploads_afterwards(server: Server) -> None:
    response = httpx.post(
        f"http://127.0.0.1:{server.port}/v1/datasets",
        headers={"Authorization": f"Bearer {KEY}"},
        files={"file": ("after.csv", csv_bytes(mixed_classification(n=60)), "text/csv")},
        timeout=60,
    )
    assert response.status_code == 201, response.text
