"""Datasets: receive an upload into the store, convert it to canonical Parquet, record it."""

from __future__ import annotations

import posixpath
from dataclasses import asdict

import pyarrow as pa
import pyarrow.parquet as pq
from fastapi import Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from engine.data.ingest import TableSummary, convert_to_parquet, detect_format
from engine.errors import DataError
from service.auth.tables import Project
from service.core.database import new_id
from service.core.errors import InvalidInput, NotFound
from service.core.schemas import Page
from service.core.settings import Settings
from service.core.store import Store
from service.datasets import repository
from service.datasets.schemas import DatasetOut
from service.datasets.tables import Dataset, source_key, table_key
from service.datasets.upload import ReceivedFile, receive_upload


async def upload_dataset(
    request: Request, session: Session, store: Store, settings: Settings, project: Project
) -> Dataset:
    dataset_id = new_id("ds")
    try:
        received = await receive_upload(
            request, store, source_key(dataset_id), settings.max_upload_mb * 2**20
        )
        fmt, summary = await run_in_threadpool(_ingest, store, dataset_id, received)
    except BaseException:
        # Nothing half-stored: a refused upload leaves no object behind.
        await run_in_threadpool(store.delete_prefix, f"datasets/{dataset_id}")
        raise
    dataset = Dataset(
        id=dataset_id,
        project_id=project.id,
        name=_display_name(received),
        source_format=fmt,
        size_bytes=received.size,
        sha256=received.sha256,
        rows=summary.rows,
        columns=[asdict(c) for c in summary.columns],
    )
    return repository.add(session, dataset)


def _ingest(store: Store, dataset_id: str, received: ReceivedFile) -> tuple[str, TableSummary]:
    try:
        fmt = detect_format(received.head, received.filename)
        with (
            store.open_read(source_key(dataset_id)) as source,
            store.open_write(table_key(dataset_id)) as sink,
        ):
            return fmt, convert_to_parquet(source, fmt, sink)
    except DataError as exc:
        raise InvalidInput(
            f"file: {exc.message}",
            code="bad_dataset",
            details=[{"field": "file", "reason": exc.message}],
        ) from exc


def _display_name(received: ReceivedFile) -> str:
    name = received.fields.get("name") or received.filename or "dataset"
    # Only ever a label: the store path comes from the id.
    name = posixpath.basename(name.replace("\\", "/")).strip() or "dataset"
    stem, ext = posixpath.splitext(name)
    if not received.fields.get("name") and ext.lower() in (".csv", ".parquet", ".pq", ".tsv"):
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
