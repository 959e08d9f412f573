"""Datasets: receive an upload into the store, convert it to canonical Parquet, record it."""

from __future__ import annotations

import posixpath
from dataclasses import asdict, dataclass, field

import pyarrow as pa
import pyarrow.parquet as pq
from fastapi import Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from engine.data.arrays import ArrayData, read_arrays, read_npz, summarise, write_arrays
from engine.data.images import read_image_zip
from engine.data.ingest import convert_to_parquet, detect_format
from engine.errors import DataError
from service.auth.tables import Project
from service.core.database import new_id
from service.core.errors import NotFound, invalid_field
from service.core.schemas import Page
from service.core.settings import Settings
from service.core.store import Store
from service.datasets import repository
from service.datasets.schemas import DatasetOut
from service.datasets.tables import Dataset, arrays_key, source_key, table_key
from service.datasets.upload import ReceivedFile, receive_upload


async def upload_dataset(
    request: Request, session: Session, store: Store, settings: Settings, project: Project
) -> Dataset:
    dataset_id = new_id("ds")
    try:
        received = await receive_upload(
            request, store, source_key(dataset_id), settings.max_upload_mb * 2**20
        )
        ingested = await run_in_threadpool(_ingest, store, dataset_id, received, settings)
    except BaseException:
        # Nothing half-stored: a refused upload leaves no object behind.
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
    return repository.add(session, dataset)


@dataclass
class Ingested:
    source_format: str
    kind: str
    rows: int
    columns: list[dict] = field(default_factory=list)
    arrays: dict | None = None


def _ingest(store: Store, dataset_id: str, received: ReceivedFile, settings: Settings) -> Ingested:
    """Parse the stored upload into its canonical form: Parquet for tables, NPZ for arrays."""
    try:
        with store.open_read(source_key(dataset_id)) as source:
            fmt = detect_format(received.head, received.filename, source)
        with (
            store.open_read(source_key(dataset_id)) as source,
            store.open_write(
                table_key(dataset_id) if fmt in ("csv", "parquet") else arrays_key(dataset_id)
            ) as sink,
        ):
            if fmt in ("csv", "parquet"):
                summary = convert_to_parquet(source, fmt, sink)
                return Ingested(fmt, "table", summary.rows, [asdict(c) for c in summary.columns])
            if fmt == "npz":
                data = read_npz(source, max_elements=settings.max_array_elements)
            else:
                data = read_image_zip(source)
            write_arrays(data, sink)
            return Ingested(fmt, "arrays", len(data.x), arrays=summarise(data))
    except DataError as exc:
        raise invalid_field("file", exc.message, code="bad_dataset") from exc


def _display_name(received: ReceivedFile) -> str:
    name = received.fields.get("name") or received.filename or "dataset"
    # Only ever a label: the store path comes from the id.
    name = posixpath.basename(name.replace("\\", "/")).strip() or "dataset"
    stem, ext = posixpath.splitext(name)
    if not received.fields.get("name") and ext.lower() in (
        ".csv",
        ".parquet",
        ".pq",
        ".tsv",
        ".npz",
        ".zip",
    ):
        name = stem or name
    return name[:200]


def get_dataset(session: Session, project: Project, dataset_id: str) -> Dataset:
    dataset = repository.get(session, project.id, dataset_id)
    if dataset is None:
        raise NotFound(f"dataset {dataset_id!r} not found")
    return dataset


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
