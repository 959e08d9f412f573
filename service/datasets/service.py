"""Datasets: receive an upload into the store, convert it to canonical Parquet, profile it,
record it."""

from __future__ import annotations

import json
import posixpath
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from engine.data.arrays.dataset import ArrayData, read_arrays, read_npz, summarise, write_arrays
from engine.data.images import read_image_zip
from engine.data.ingest import convert_to_parquet
from engine.data.ingest.formats import SNIFF_BYTES, detect_format
from engine.data.ingest.table import ColumnTypeConflict, TableLimits, TableTooLarge
from engine.data.profile.results import PROFILE_VERSION, TableProfile, table_profile_from_dict
from engine.data.profile.table import TableProfiler, profile_table
from engine.data.profile.target import profile_target
from engine.errors import DataError
from service.auth.tables import Project
from service.core.database import new_id
from service.core.errors import Conflict, TooLarge, found, invalid_field
from service.core.schemas import Page
from service.core.settings import Settings
from service.core.store import Store
from service.datasets import repository
from service.datasets.live_ingest import LiveConversion
from service.datasets.schemas import DatasetOut, DatasetProfileOut, TargetProfileOut
from service.datasets.tables import (
    Dataset,
    arrays_key,
    profile_key,
    source_key,
    table_key,
    target_profile_key,
)
from service.datasets.upload import ReceivedFile, UploadBody, receive_upload
from service.idempotency import service as idempotency

# A column whose type changes after the first piece is read again at most this many times.
MAX_TYPE_RETRIES = 3


async def upload_dataset(
    body: UploadBody,
    session: Session,
    store: Store,
    settings: Settings,
    project: Project,
    idempotency_key: str | None = None,
) -> tuple[Dataset, bool]:
    """The new dataset and True; or, when this project uploaded the same bytes before, that
    dataset and False (the second copy is deleted); or, when this project's `idempotency_key`
    created a dataset before, that one and False (the body is not read)."""
    # Every database call below runs off the event loop: on SQLite a write waits for the
    # write lock, and the request holding it needs this loop to reach its commit.
    earlier = await run_in_threadpool(
        idempotency.earlier_resource, session, project.id, idempotency.DATASET, idempotency_key
    )
    if earlier is not None:
        return await run_in_threadpool(get_dataset, session, project, earlier), False
    dataset_id = new_id("ds")
    live = LiveConversion(store, table_key(dataset_id), _table_limits(settings))
    try:
        received = await receive_upload(
            body,
            store,
            source_key(dataset_id),
            settings.max_upload_mb * 2**20,
            on_file_data=live.feed,
        )
        existing = await run_in_threadpool(
            repository.get_by_sha256, session, project.id, received.sha256
        )
        if existing is not None:
            await run_in_threadpool(live.abort)
            await run_in_threadpool(store.delete_prefix, f"datasets/{dataset_id}")
            winner = await _claim_key(session, project, idempotency_key, existing.id)
            if winner is None:
                return existing, False
            return await run_in_threadpool(get_dataset, session, project, winner), False
        ingested = await run_in_threadpool(_ingest, store, dataset_id, received, settings, live)
        winner = await _claim_key(session, project, idempotency_key, dataset_id)
        if winner is not None:
            await run_in_threadpool(store.delete_prefix, f"datasets/{dataset_id}")
            return await run_in_threadpool(get_dataset, session, project, winner), False
    except BaseException:
        # Nothing half-stored: a refused upload leaves no object behind. The live conversion
        # stops first, so it cannot write after the folder is cleared.
        await run_in_threadpool(live.abort)
        await run_in_threadpool(store.delete_prefix, f"datasets/{dataset_id}")
        raise
    dataset = Dataset(
        id=dataset_id,
        project_id=project.id,
        name=_display_name(received),
        source_format=ingested.source_format,
        kind=ingested.kind,
        size_bytes=received.size,
        sha256=received.sha256,
        rows=ingested.rows,
        columns=ingested.columns,
        arrays=ingested.arrays,
    )
    return await run_in_threadpool(repository.add, session, dataset), True


async def _claim_key(
    session: Session, project: Project, key: str | None, dataset_id: str
) -> str | None:
    # Off the event loop: on PostgreSQL the insert waits for a concurrent request with the same
    # key to commit, and that request may need this loop to get there.
    return await run_in_threadpool(
        idempotency.claim, session, project.id, idempotency.DATASET, key, dataset_id
    )


@dataclass
class Ingested:
    source_format: str
    kind: str
    rows: int
    columns: list[dict] = field(default_factory=list)
    arrays: dict | None = None


def _ingest(
    store: Store,
    dataset_id: str,
    received: ReceivedFile,
    settings: Settings,
    live: LiveConversion | None = None,
) -> Ingested:
    """Parse the stored upload into its canonical form: Parquet for tables, NPZ for arrays.

    A text upload already converted (and for the most part profiled) while it arrived
    (`live`) only waits for that."""
    try:
        with store.open_read(source_key(dataset_id)) as source:
            head = source.read(SNIFF_BYTES)
            source.seek(0)
            fmt = detect_format(head, received.filename, source)
        if fmt in ("npz", "image_zip"):
            return _ingest_arrays(store, dataset_id, fmt, settings)
        limits = _table_limits(settings)
        column_types: dict = {}
        summary = None
        profiler = live.profiler if live is not None else TableProfiler()
        try:
            summary = live.finish() if live is not None else None
        except ColumnTypeConflict as exc:
            # Rare: the first rows did not show the column's real type. Read it again.
            column_types[exc.column] = exc.widened
        for attempt in range(MAX_TYPE_RETRIES + 1):
            if summary is not None:
                break
            profiler = TableProfiler()  # what an earlier attempt counted is void
            try:
                with (
                    store.open_read(source_key(dataset_id)) as source,
                    store.open_write(table_key(dataset_id)) as sink,
                ):
                    summary = convert_to_parquet(
                        source, fmt, sink, limits, column_types, on_piece=profiler.add
                    )
                break
            except ColumnTypeConflict as exc:
                # Rare: the first rows did not show the column's real type. Read it again.
                if attempt == MAX_TYPE_RETRIES or exc.column in column_types:
                    raise
                column_types[exc.column] = exc.widened
        _store_profile(store, dataset_id, profiler)
        columns = [asdict(c) for c in summary.columns]
        return Ingested(summary.source_format, "table", summary.rows, columns)
    except TableTooLarge as exc:
        raise TooLarge(
            f"file: {exc.message}", details=[{"field": "file", exc.what: exc.limit}]
        ) from exc
    except DataError as exc:
        raise invalid_field("file", exc.message, code="bad_dataset") from exc


def _ingest_arrays(store: Store, dataset_id: str, fmt: str, settings: Settings) -> Ingested:
    with (
        store.open_read(source_key(dataset_id)) as source,
        store.open_write(arrays_key(dataset_id)) as sink,
    ):
        if fmt == "npz":
            data = read_npz(source, max_elements=settings.max_array_elements)
        else:
            data = read_image_zip(source)
        write_arrays(data, sink)
    return Ingested(fmt, "arrays", len(data.x), arrays=summarise(data))


def _table_limits(settings: Settings) -> TableLimits:
    return TableLimits(max_rows=settings.max_rows, max_columns=settings.max_columns)


def _store_profile(
    store: Store, dataset_id: str, profiler: TableProfiler | None = None
) -> TableProfile:
    """Profile the stored table: finish `profiler`, which saw it converted, or read it all."""
    key = table_key(dataset_id)
    # A local file is read by its path: pyarrow then reads it itself, where through a Python
    # file object every read takes the GIL and a copy (twice the time for this read-back).
    opened = nullcontext(store.path(key)) if store.is_local else store.open_read(key)
    with opened as source:
        profile = profiler.finish(source) if profiler is not None else profile_table(source)
    store.write_bytes(profile_key(dataset_id), json.dumps(asdict(profile)).encode())
    return profile


def _display_name(received: ReceivedFile) -> str:
    name = received.fields.get("name") or received.filename or "dataset"
    # Only ever a label: the store path comes from the id.
    name = posixpath.basename(name.replace("\\", "/")).strip() or "dataset"
    stem, ext = posixpath.splitext(name)
    if not received.fields.get("name") and ext.lower() in (
        ".csv",
        ".tsv",
        ".jsonl",
        ".ndjson",
        ".parquet",
        ".pq",
        ".tsv",
        ".npz",
        ".zip",
    ):
        name = stem or name
    return name[:200]


def get_dataset(session: Session, project: Project, dataset_id: str) -> Dataset:
    return found(repository.get(session, project.id, dataset_id), "dataset", dataset_id)


def get_profile(
    session: Session, store: Store, project: Project, dataset_id: str, target: str | None
) -> DatasetProfileOut:
    """The stored profile (computed now for a dataset uploaded before profiles existed); with
    `target`, its class balance or distribution and each feature's relation to it, cached."""
    dataset = get_dataset(session, project, dataset_id)
    if dataset.kind != "table":
        raise Conflict(
            f"dataset {dataset_id!r} holds {dataset.kind}, not a table: only tables have a "
            "profile (GET the dataset for the arrays' shapes and classes)",
            code="not_a_table",
        )
    table = _load_profile(store, dataset.id)
    out = DatasetProfileOut.model_validate({"dataset_id": dataset.id, **asdict(table)})
    if target is None:
        return out
    names = [c.name for c in table.columns]
    if target not in names:
        raise invalid_field("target", f"no column {target!r} in the dataset")
    key = target_profile_key(dataset.id, names.index(target))
    cached = _read_json(store, key)
    if cached is None or cached.get("version") != PROFILE_VERSION:
        with store.open_read(table_key(dataset.id)) as fh:
            cached = asdict(profile_target(fh, table, target))
        store.write_bytes(key, json.dumps(cached).encode())
    out.target = TargetProfileOut.model_validate(cached)
    out.warnings = [*out.warnings, *out.target.warnings]
    return out


def _load_profile(store: Store, dataset_id: str) -> TableProfile:
    stored = _read_json(store, profile_key(dataset_id))
    if stored is None or stored.get("version") != PROFILE_VERSION:
        return _store_profile(store, dataset_id)
    return table_profile_from_dict(stored)


def _read_json(store: Store, key: str) -> dict | None:
    if not store.exists(key):
        return None
    return json.loads(store.read_bytes(key))


def list_datasets(session: Session, project: Project, limit: int, offset: int) -> Page[DatasetOut]:
    items = repository.list_page(session, project.id, limit, offset)
    return Page[DatasetOut](
        items=[DatasetOut.model_validate(d) for d in items],
        total=repository.count(session, project.id),
        limit=limit,
        offset=offset,
    )


def read_table(store: Store, dataset: Dataset) -> pa.Table:
    with store.open_read(table_key(dataset.id)) as fh:
        return pq.read_table(fh)


def read_dataset(store: Store, dataset: Dataset) -> pa.Table | ArrayData:
    """The dataset's canonical content: a table, or x/y arrays."""
    if dataset.kind == "arrays":
        with store.open_read(arrays_key(dataset.id)) as fh:
            return read_arrays(fh)
    return read_table(store, dataset)
