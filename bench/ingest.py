"""Upload speed and memory: a 1,000,000 x 30 CSV through `POST /v1/datasets` vs pyarrow.

Generates the CSV (20 numeric columns, 10 categorical, some missing values) in a temporary
folder, starts the real API (`trainyard api` on the embedded default), streams the file up
with httpx and times the request (upload + parse + Parquet + profile). In the same run,
`pyarrow.csv.read_csv` reads the same file: the peer. The API process's peak RSS (VmHWM)
during the upload is compared with its RSS before. The last line is JSON.

    .venv/bin/python -m bench.ingest [--rows 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from tests.e2e.fleet import free_port, service_env, stop, trainyard, wait_until_ready

KEY = "ty_bench_" + "i" * 24
NUMERIC, CATEGORICAL = 20, 10
CHUNK_BYTES = 1 << 20


def write_csv(path: Path, rows: int, seed: int = 0) -> None:
    """Written in slices so the generator itself stays small."""
    rng = np.random.default_rng(seed)
    levels = np.array([f"level_{i}" for i in range(12)])
    writer = None
    step = 100_000
    with path.open("wb") as sink:
        for start in range(0, rows, step):
            n = min(step, rows - start)
            columns: dict[str, pa.Array] = {}
            for i in range(NUMERIC):
                values = np.round(rng.normal(loc=i, scale=1 + i, size=n), 4)
                mask = rng.random(n) < 0.02 if i % 4 == 0 else None
                columns[f"num_{i}"] = pa.array(values, mask=mask)
            for i in range(CATEGORICAL):
                values = levels[rng.integers(0, 3 + i, size=n)]
                mask = rng.random(n) < 0.02 if i % 3 == 0 else None
                columns[f"cat_{i}"] = pa.array(values, mask=mask)
            table = pa.table(columns)
            if writer is None:
                writer = pacsv.CSVWriter(sink, table.schema)
            writer.write_table(table)
        if writer is not None:
            writer.close()


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (peak since start, or since the last reset) of a process."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def reset_peak(pid: int) -> bool:
    # Writing 5 to clear_refs resets VmHWM to the current RSS (Linux >= 4.0).
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def multipart_parts(path: Path, boundary: str) -> tuple[bytes, bytes]:
    head = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{path.name}"\r\n'
        "Content-Type: text/csv\r\n\r\n"
    ).encode()
    return head, f"\r\n--{boundary}--\r\n".encode()


def multipart_body(path: Path, head: bytes, tail: bytes) -> Iterator[bytes]:
    yield head
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK_BYTES):
            yield chunk
    yield tail


def upload(base_url: str, path: Path) -> tuple[float, dict]:
    boundary = "trainyard-bench-boundary"
    head, tail = multipart_parts(path, boundary)
    headers = {
        "Authorization": f"Bearer {KEY}",
        "Content-Type": f"multipart/form-data; boundary={boundary}",
        # As curl -F sends it: a known length, so the body is not chunk-encoded.
        "Content-Length": str(len(head) + path.stat().st_size + len(tail)),
    }
    started = time.perf_counter()
    response = httpx.post(
        f"{base_url}/v1/datasets",
        content=multipart_body(path, head, tail),
        headers=headers,
        timeout=1800,
    )
    elapsed = time.perf_counter() - started
    if response.status_code not in (200, 201):
        raise RuntimeError(f"upload failed: {response.status_code} {response.text[:500]}")
    return elapsed, response.json()


def pyarrow_read_s(path: Path) -> float:
    started = time.perf_counter()
    table = pacsv.read_csv(path)
    elapsed = time.perf_counter() - started
    assert table.num_columns == NUMERIC + CATEGORICAL
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        path = scratch / "bench.csv"
        write_csv(path, args.rows)
        file_mb = path.stat().st_size / 2**20

        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        # `trainyard api` runs uvicorn in its own process: the pid we watch serves the API.
        api = trainyard(
            "api", env=service_env(scratch / "service", port, KEY), log=scratch / "api.log"
        )
        try:
            wait_until_ready(base_url, [api])
            before = memory_kb(api.pid)
            exact_peak = reset_peak(api.pid)
            if exact_peak:
                before = memory_kb(api.pid)
            service_cpu, client_cpu = cpu_seconds(api.pid), time.process_time()
            ingest_s, dataset = upload(base_url, path)
            service_cpu = cpu_seconds(api.pid) - service_cpu
            client_cpu = time.process_time() - client_cpu
            after = memory_kb(api.pid)
            profile = httpx.get(
                f"{base_url}/v1/datasets/{dataset['id']}/profile",
                headers={"Authorization": f"Bearer {KEY}"},
                timeout=600,
            )
        finally:
            stop(api)
        assert dataset["rows"] == args.rows, dataset["rows"]
        pyarrow_s = pyarrow_read_s(path)

    growth_mb = (after["VmHWM"] - before["VmRSS"]) / 1024
    result = {
        "rows": args.rows,
        "file_mb": round(file_mb, 1),
        "ingest_s": round(ingest_s, 3),
        "ingest_mb_per_s": round(file_mb / ingest_s, 1),
        "pyarrow_s": round(pyarrow_s, 3),
        "pyarrow_mb_per_s": round(file_mb / pyarrow_s, 1),
        "ingest_vs_pyarrow": round(pyarrow_s / ingest_s, 3),
        "service_rss_before_mb": round(before["VmRSS"] / 1024, 1),
        "service_rss_peak_mb": round(after["VmHWM"] / 1024, 1),
        "service_rss_growth_mb": round(growth_mb, 1),
        "profile_status": profile.status_code,
        # Where the time goes on a small machine: CPU seconds spent during the upload.
        "service_cpu_s": round(service_cpu, 2),
        "client_cpu_s": round(client_cpu, 2),
        "cores": os.cpu_count(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
